// Compile-only stub: exactly the members of LiteRT's InterpreterApi that
// android_demo_assets/snippets/IchEdgeModel.kt uses, with LiteRT's names and signatures.
//
// Source: google-ai-edge/LiteRT, git tag v1.4.0 (Maven com.google.ai.edge.litert:litert:1.4.0),
// tflite/java/src/main/java/org/tensorflow/lite/InterpreterApi.java:
//   public interface InterpreterApi extends AutoCloseable                        (line 103)
//   class Options { public Options(); public Options setNumThreads(int numThreads);
//                   public Options setUseXNNPACK(boolean useXNNPACK); }         (lines 106-310)
//   public void runSignature(@NonNull Map<String, Object> inputs,
//       @NonNull Map<String, Object> outputs, String signatureKey);             (line 564)
//   void close();                                                                (line 624)
// Unchanged at tag v2.2.0. The option setters keep their values (as the real class does) so the
// JVM test double (apps/jvm/double/) can read them.
package org.tensorflow.lite;

import java.util.Map;
import org.checkerframework.checker.nullness.qual.NonNull;

public interface InterpreterApi extends AutoCloseable {

  /** An options class for controlling runtime interpreter behavior. */
  class Options {
    int numThreads = -1;
    Boolean useXNNPACK;

    public Options() {}

    public Options setNumThreads(int numThreads) {
      this.numThreads = numThreads;
      return this;
    }

    public Options setUseXNNPACK(boolean useXNNPACK) {
      this.useXNNPACK = useXNNPACK;
      return this;
    }
  }

  public void runSignature(
      @NonNull Map<String, Object> inputs,
      @NonNull Map<String, Object> outputs,
      String signatureKey);

  @Override
  void close();
}
