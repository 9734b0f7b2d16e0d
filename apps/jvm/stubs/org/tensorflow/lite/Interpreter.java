// Compile-only stub: exactly the members of LiteRT's Interpreter that
// android_demo_assets/snippets/IchEdgeModel.kt uses, with LiteRT's names and signatures.
// Nothing here runs a model: the JVM test runs the compiled snippet against the test double
// apps/jvm/double/org/tensorflow/lite/Interpreter.java (same signatures, answered by
// ai-edge-litert through apps/jvm/litert_bridge.py).
//
// Source: google-ai-edge/LiteRT, git tag v1.4.0 (Maven com.google.ai.edge.litert:litert:1.4.0),
// tflite/java/src/main/java/org/tensorflow/lite/Interpreter.java:
//   public final class Interpreter extends InterpreterImpl implements InterpreterApi (line 93)
//   public static class Options extends InterpreterImpl.Options                     (line 96)
//     public Options()                                                              (line 97)
//     public Options setUseXNNPACK(boolean useXNNPACK)                              (line 108)
//     public Options setNumThreads(int numThreads)                                  (line 114)
//   public Interpreter(@NonNull File modelFile, Options options)                    (line 199)
// and tflite/java/src/main/java/org/tensorflow/lite/InterpreterImpl.java:
//   public void runSignature(@NonNull Map<String, Object> inputs,
//       @NonNull Map<String, Object> outputs, String signatureKey)                  (line 164)
//   public void close()                                                             (line 248)
// Unchanged at tag v2.2.0. The package-private InterpreterImpl layer is folded in here.
// Deliberately absent: resetVariableTensors() (the model's classify is stateless; a snippet
// that still calls it does not compile against these stubs).
package org.tensorflow.lite;

import java.io.File;
import java.util.Map;
import org.checkerframework.checker.nullness.qual.NonNull;

public final class Interpreter implements InterpreterApi {

  /** An options class for controlling runtime interpreter behavior. */
  public static class Options extends InterpreterApi.Options {
    public Options() {}

    @Override
    public Options setUseXNNPACK(boolean useXNNPACK) {
      super.setUseXNNPACK(useXNNPACK);
      return this;
    }

    @Override
    public Options setNumThreads(int numThreads) {
      super.setNumThreads(numThreads);
      return this;
    }
  }

  public Interpreter(@NonNull File modelFile, Options options) {
    throw new UnsupportedOperationException(STUB);
  }

  @Override
  public void runSignature(
      @NonNull Map<String, Object> inputs,
      @NonNull Map<String, Object> outputs,
      String signatureKey) {
    throw new UnsupportedOperationException(STUB);
  }

  @Override
  public void close() {
    throw new UnsupportedOperationException(STUB);
  }

  private static final String STUB =
      "compile-time stub of org.tensorflow.lite.Interpreter; run with apps/jvm/double/ on the classpath";
}
