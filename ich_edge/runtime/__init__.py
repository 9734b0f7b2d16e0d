"""Runtime tier: runs on an edge box with numpy, pydicom, click and ai-edge-litert only."""
