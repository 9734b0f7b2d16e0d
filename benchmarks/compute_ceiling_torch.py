"""How far the demo's CNN-LSTM gets on the phantom with more studies and more training steps.

Not part of the package and not a timing: an accuracy-versus-compute probe, run on a lent
GPU machine. TensorFlow cannot be installed there (no package registry; its wheel is larger
than what travels), so this is a PyTorch replica of ich-edge's default model and recipe:
edge backbone at width 0.5 (the layer list of ``ich_edge.training.model.EDGE_BLOCKS``),
global average pool -> Dense 64 ReLU, BiLSTM 32, Dense 6 sigmoid; RSNA-weighted binary
cross-entropy with positive weight 3; Adam 3e-3, one warm-up epoch from 3e-4, cosine to 2 %;
batches of 8 windows of 24 slices, a grid of non-overlapping windows at a random offset each
epoch; flip, +-10 degree rotation, +-5 % shift and +-5 % intensity per window; Keras
initializers. Evaluation uses the package's own window and stitch rule
(``ich_edge.sequence``) and study rule (max over slices) on the package's cache.

Its numbers compare with each other. Against the TensorFlow pipeline the replica is close,
not identical: 960 training studies x 6 epochs gave test EDH/IPH 0.835/0.805 here and
0.871/0.868 with ``ich-edge train`` on the same studies.

usage (see compute_ceiling_gpu.sh for the whole run on a GPU machine):
    python benchmarks/compute_ceiling_torch.py TRAIN_CACHE TEST_CACHE SPLIT_JSON RUNS_JSON SYNTH_CONFIG \
        [START_DEADLINE_S] [OUT_JSON]

SPLIT_JSON: a run's ``split.json`` (its validation studies are held out of every run).
RUNS_JSON: ``[{"name": ..., "studies": N, "epochs": E, "width": 0.5, "feature_dim": 64, "units": 32}, ...]``;
"studies": N trains on the studies of synth index < N (``SYNTH_CONFIG``: the training set's
``synth_config.json``) that are not validation studies. A run is not started after
START_DEADLINE_S seconds.
"""
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the ich_edge of this checkout
from ich_edge.ingest.cache import Cache  # noqa: E402
from ich_edge.metrics import RSNA_WEIGHTS, roc_auc  # noqa: E402
from ich_edge.sequence import SequenceConfig, epoch_window_starts, stitch, study_probabilities, window_indices  # noqa: E402

T0 = time.time()
DEV = "cuda" if torch.cuda.is_available() else "cpu"
LABELS = ("EDH", "IPH", "IVH", "SAH", "SDH", "any")
EDGE_BLOCKS = ((16, 1, 1), (24, 2, 4), (24, 1, 4), (32, 2, 4), (32, 1, 4), (64, 2, 4), (64, 1, 4), (96, 2, 4))
WINDOW, BATCH = 24, 8


def ch(base, width):
    return max(8, int(round(base * width / 8.0)) * 8)


def cbr(cin, cout, k, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout, 1e-3, 0.1), nn.ReLU6())


class IR(nn.Module):
    def __init__(self, cin, cout, stride, e):
        super().__init__()
        mid = cin * e
        self.body = nn.Sequential(
            cbr(cin, mid, 1, 1),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid, 1e-3, 0.1), nn.ReLU6(),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout, 1e-3, 0.1),
        )
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.skip else y


class Model(nn.Module):
    def __init__(self, width=0.5, feature_dim=64, units=32, dropout=0.2):
        super().__init__()
        layers, c = [cbr(3, ch(16, width), 3, 2)], ch(16, width)
        for f, s, e in EDGE_BLOCKS:
            layers.append(IR(c, ch(f, width), s, e))
            c = ch(f, width)
        layers.append(cbr(c, ch(192, width), 1, 1))
        self.backbone = nn.Sequential(*layers)
        self.features = nn.Linear(ch(192, width), feature_dim)
        self.drop = nn.Dropout(dropout)
        self.lstm = nn.LSTM(feature_dim, units, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * units, 6)
        for m in self.modules():  # Keras initializers: glorot uniform, orthogonal recurrent, forget bias 1
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for name, p in self.lstm.named_parameters():
            if "weight_ih" in name:
                for chunk in p.data.chunk(4):
                    nn.init.xavier_uniform_(chunk)
            elif "weight_hh" in name:
                for chunk in p.data.chunk(4):
                    nn.init.orthogonal_(chunk)
            elif "bias_ih" in name:
                p.data.zero_()
                p.data[units:2 * units] = 1.0
            else:
                p.data.zero_()

    def encode(self, x):  # (N, 3, S, S) in [0, 1]
        return F.relu(self.features(self.backbone(x).mean((2, 3))))

    def head(self, feats):  # (B, T, F) -> logits (B, T, 6)
        y, _ = self.lstm(self.drop(feats))
        return self.out(self.drop(y))

    def forward(self, windows):  # (B, T, 3, S, S)
        b, t = windows.shape[:2]
        return self.head(self.encode(windows.flatten(0, 1)).view(b, t, -1))


def load(series, uids=None):
    if uids is not None:
        series = [s for s in series if s.study_uid in uids]
    images = np.concatenate([s.images for s in series] + [np.zeros((1, *series[0].images.shape[1:]), np.uint8)])
    offsets = np.cumsum([0] + [s.num_slices for s in series])
    return series, torch.from_numpy(images).to(DEV), offsets


def augment(x, rng):
    """x: (B, T, S, S, 3) uint8 on DEV -> (B, T, 3, S, S) float, one draw per window."""
    b, t, s = x.shape[:3]
    x = x.permute(0, 1, 4, 2, 3).float() / 255.0
    flip = torch.from_numpy(rng.random(b) < 0.5).to(DEV)
    x = torch.where(flip[:, None, None, None, None], x.flip(-1), x)
    ang = torch.from_numpy(np.deg2rad(rng.uniform(-10, 10, b))).float().to(DEV)
    shift = torch.from_numpy(rng.uniform(-0.05, 0.05, (b, 2)) * 2.0).float().to(DEV)  # normalized coords
    theta = torch.stack([torch.stack([ang.cos(), -ang.sin(), shift[:, 0]], 1), torch.stack([ang.sin(), ang.cos(), shift[:, 1]], 1)], 1)
    theta = theta.repeat_interleave(t, 0)
    flat = x.flatten(0, 1)
    grid = F.affine_grid(theta, flat.shape, align_corners=True)
    flat = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    gain = torch.from_numpy(1.0 + rng.uniform(-0.05, 0.05, (b, 3))).float().to(DEV).repeat_interleave(t, 0)[:, :, None, None]
    off = torch.from_numpy(rng.uniform(-0.025, 0.025, (b, 3))).float().to(DEV).repeat_interleave(t, 0)[:, :, None, None]
    flat = torch.where(flat > 0, (flat * gain + off).clamp(0, 1), torch.zeros_like(flat))
    return flat.view(b, t, 3, s, s)


def train_run(cfg, train, log):
    torch.manual_seed(cfg.get("seed", 0))
    rng = np.random.default_rng(cfg.get("seed", 0))
    series, images, offsets = train
    blank = len(images) - 1
    model = Model(cfg.get("width", 0.5), cfg.get("feature_dim", 64), cfg.get("units", 32)).to(DEV)
    steps = sum(-(-s.num_slices // WINDOW) for s in series) // BATCH
    total, warm = cfg["epochs"] * steps, steps
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, eps=1e-7)

    def lr_at(i):
        if i < warm:
            return 3e-4 + (3e-3 - 3e-4) * i / warm
        frac = min(1.0, (i - warm) / max(1, total - warm))
        return 3e-3 * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))

    w_label = torch.tensor(RSNA_WEIGHTS / RSNA_WEIGHTS.sum(), dtype=torch.float32, device=DEV)
    labels_all = torch.from_numpy(np.concatenate([s.slice_labels for s in series] + [np.full((1, 6), -1, np.int8)])).to(DEV)
    step, t0 = 0, time.time()
    for epoch in range(cfg["epochs"]):
        model.train()
        windows = []
        for k, s in enumerate(series):
            for start in epoch_window_starts(s.num_slices, WINDOW, rng):
                idx = np.arange(start, start + WINDOW)
                windows.append(np.where(idx < s.num_slices, offsets[k] + idx, blank))
        windows = np.array(windows)[rng.permutation(len(windows))]
        losses = []
        for b in range(len(windows) // BATCH):
            idx = torch.from_numpy(windows[b * BATCH:(b + 1) * BATCH]).to(DEV)
            x = augment(images[idx], rng)
            raw = labels_all[idx]
            weight = (raw >= 0).all(-1).float()
            y = raw.clamp(min=0).float()
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            logits = model(x)
            logp, log1mp = F.logsigmoid(logits), F.logsigmoid(-logits)
            bce = -(3.0 * y * logp + (1 - y) * log1mp)
            per_slice = (bce * w_label).sum(-1)
            loss = (per_slice * weight).sum() / weight.sum().clamp(min=1.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
        log(f"  {cfg['name']} epoch {epoch + 1}/{cfg['epochs']} loss {np.mean(losses):.4f} ({time.time() - t0:.0f} s)")
    return model


@torch.no_grad()
def study_scores(model, data):
    model.eval()
    series, images, offsets = data
    seq = SequenceConfig(window_slices=WINDOW, stride_slices=12)
    blank_feat = model.encode(torch.zeros(1, 3, images.shape[1], images.shape[2], device=DEV))[0]
    out = []
    for k, s in enumerate(series):
        x = images[offsets[k]:offsets[k + 1]].permute(0, 3, 1, 2).float() / 255.0
        feats = model.encode(x)
        idx = torch.from_numpy(window_indices(s.num_slices, seq)).to(DEV)
        win = torch.where((idx >= 0)[..., None], feats[idx.clamp(min=0)], blank_feat)
        probs = torch.sigmoid(model.head(win)).cpu().numpy()
        out.append(study_probabilities(stitch(probs, s.num_slices, seq)))
    y = np.array([s.study_labels for s in series])
    return y, np.array(out)


def aucs(y, p):
    return [roc_auc(y[:, i], p[:, i]) for i in range(6)]


def main():
    train_path, test_path, split_path, runs_path = sys.argv[1:5]
    synth = json.load(open(sys.argv[5]))["studies"]
    index_of = {entry["study_uid"]: entry["index"] for entry in synth}
    deadline = float(sys.argv[6]) if len(sys.argv) > 6 else 1e9

    def log(message):
        print(f"[{time.time() - T0:5.0f} s] {message}", flush=True)

    split = json.load(open(split_path))
    runs = json.load(open(runs_path))
    test = load(Cache.open(test_path).series())
    val_uids = set(split["val_studies"])
    all_train = Cache.open(train_path).series()
    train_uids = [s.study_uid for s in all_train if s.study_uid not in val_uids]
    val = load(all_train, val_uids)
    log(f"device {DEV} {torch.cuda.get_device_name() if DEV == 'cuda' else ''}; {len(train_uids)} train studies available, "
        f"{len(val[0])} val, {len(test[0])} test")
    results = []
    for cfg in runs:
        if time.time() - T0 > deadline:
            log(f"skip {cfg['name']}: past the deadline")
            continue
        order = {uid for uid in train_uids if index_of[uid] < cfg["studies"]}
        train = load(all_train, order)
        t = time.time()
        model = train_run(cfg, train, log)
        seconds = time.time() - t
        row = {**cfg, "train_studies": len(train[0]), "seconds": round(seconds, 1)}
        for name, data in (("val", val), ("test", test)):
            row[name] = [round(a, 3) for a in aucs(*study_scores(model, data))]
        results.append(row)
        log(f"{cfg['name']}: {len(train[0])} studies x {cfg['epochs']} ep, {seconds:.0f} s | test " +
            " ".join(f"{n} {a:.3f}" for n, a in zip(LABELS, row["test"])) + " | val " +
            " ".join(f"{n} {a:.3f}" for n, a in zip(LABELS, row["val"])))
        del train
        if DEV == "cuda":
            torch.cuda.empty_cache()
        if len(sys.argv) > 7:  # after every run, so a run cut short keeps the finished ones
            Path(sys.argv[7]).write_text(json.dumps(results, indent=1))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
