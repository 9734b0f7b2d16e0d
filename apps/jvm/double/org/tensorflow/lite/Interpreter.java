// Test double of LiteRT's org.tensorflow.lite.Interpreter for running the Kotlin snippet on the JVM.
//
// Same public signatures as the compile-time stub apps/jvm/stubs/org/tensorflow/lite/Interpreter.java
// (which are LiteRT's own); the snippet is compiled against the stubs and run with this class first
// on the classpath, so a signature that differs fails the run with NoSuchMethodError.
// runSignature() is answered by ai-edge-litert: the constructor starts
//   <python> apps/jvm/litert_bridge.py MODEL --threads N [--no-xnnpack] [--perturb SPEC]
// and every call sends one JSON header line plus the raw input bytes on the child's stdin and reads
// one JSON header line plus the raw output bytes from its stdout (protocol in litert_bridge.py).
//
// System properties: ichedge.bridge.python (default "python3"), ichedge.bridge.script (required),
// ichedge.bridge.perturb (optional, passed on as --perturb: the negative control),
// ichedge.bridge.log (optional: close() appends one JSON line with the calls per signature and the
// options the snippet set).
//
// Buffer semantics follow LiteRT's TensorImpl: a ByteBuffer input is read whole (its capacity must be
// the tensor's byte size, position ignored); a ByteBuffer output receives the bytes with put(),
// from its current position.
package org.tensorflow.lite;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.File;
import java.io.FileWriter;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
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

  private final Process bridge;
  private final OutputStream toBridge;
  private final DataInputStream fromBridge;
  private final Options options;
  private final Map<String, Integer> calls = new TreeMap<>();
  private boolean closed;

  public Interpreter(@NonNull File modelFile, Options options) {
    this.options = options == null ? new Options() : options;
    String script = System.getProperty("ichedge.bridge.script");
    if (script == null) {
      throw new IllegalStateException("set -Dichedge.bridge.script=apps/jvm/litert_bridge.py");
    }
    List<String> command = new ArrayList<>();
    command.add(System.getProperty("ichedge.bridge.python", "python3"));
    command.add(script);
    command.add(modelFile.getAbsolutePath());
    command.add("--threads");
    command.add(Integer.toString(this.options.numThreads));
    if (Boolean.FALSE.equals(this.options.useXNNPACK)) {
      command.add("--no-xnnpack");
    }
    String perturb = System.getProperty("ichedge.bridge.perturb");
    if (perturb != null && !perturb.isEmpty()) {
      command.add("--perturb");
      command.add(perturb);
    }
    try {
      bridge = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT).start();
    } catch (IOException e) {
      throw new IllegalArgumentException("cannot start the LiteRT bridge " + command + ": " + e, e);
    }
    toBridge = new BufferedOutputStream(bridge.getOutputStream(), 1 << 16);
    fromBridge = new DataInputStream(new BufferedInputStream(bridge.getInputStream(), 1 << 16));
    String ready = readHeader();
    if (!ready.contains("\"ready\"")) {
      close();
      throw new IllegalArgumentException("Cannot create interpreter: " + ready);
    }
  }

  @Override
  public void runSignature(
      @NonNull Map<String, Object> inputs,
      @NonNull Map<String, Object> outputs,
      String signatureKey) {
    if (closed) {
      throw new IllegalStateException("Internal error: The Interpreter has already been closed.");
    }
    if (inputs == null || inputs.isEmpty() || outputs == null || signatureKey == null) {
      throw new IllegalArgumentException("Input error: inputs must be non-empty, outputs and signatureKey non-null.");
    }
    StringBuilder header = new StringBuilder();
    ByteArrayOutputStream payload = new ByteArrayOutputStream();
    header.append("{\"signature\": ").append(quote(signatureKey)).append(", \"inputs\": [");
    boolean first = true;
    for (Map.Entry<String, Object> entry : inputs.entrySet()) {
      if (!(entry.getValue() instanceof ByteBuffer)) {
        throw new IllegalArgumentException("this test double takes ByteBuffer inputs only, got " + entry.getValue());
      }
      ByteBuffer whole = ((ByteBuffer) entry.getValue()).duplicate();
      whole.clear();  // LiteRT copies a direct buffer from its start, whatever its position
      byte[] bytes = new byte[whole.capacity()];
      whole.get(bytes);
      payload.write(bytes, 0, bytes.length);
      header.append(first ? "" : ", ").append("[").append(quote(entry.getKey())).append(", ").append(bytes.length).append("]");
      first = false;
    }
    header.append("], \"outputs\": [");
    first = true;
    for (String name : outputs.keySet()) {
      header.append(first ? "" : ", ").append(quote(name));
      first = false;
    }
    header.append("]}\n");
    try {
      toBridge.write(header.toString().getBytes(StandardCharsets.UTF_8));
      payload.writeTo(toBridge);
      toBridge.flush();
    } catch (IOException e) {
      throw new IllegalArgumentException("the LiteRT bridge is gone: " + e, e);
    }
    String reply = readHeader();
    if (reply.contains("\"error\"")) {
      throw new IllegalArgumentException("Internal error: Failed to run on the given Interpreter: " + reply);
    }
    Matcher m = Pattern.compile("\\[\"([^\"]*)\", (\\d+)\\]").matcher(reply);
    while (m.find()) {
      byte[] bytes = new byte[Integer.parseInt(m.group(2))];
      try {
        fromBridge.readFully(bytes);
      } catch (IOException e) {
        throw new IllegalArgumentException("the LiteRT bridge is gone: " + e, e);
      }
      Object target = outputs.get(m.group(1));
      if (!(target instanceof ByteBuffer)) {
        throw new IllegalArgumentException("this test double fills ByteBuffer outputs only, got " + target);
      }
      ByteBuffer out = (ByteBuffer) target;
      if (out.remaining() < bytes.length) {
        throw new IllegalArgumentException(
            "Cannot copy from a TensorFlowLite tensor (" + m.group(1) + ") with " + bytes.length
                + " bytes to a Java Buffer with " + out.remaining() + " bytes.");
      }
      out.put(bytes);
    }
    calls.merge(signatureKey, 1, Integer::sum);
  }

  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    try {
      toBridge.close();
      bridge.waitFor();
    } catch (IOException | InterruptedException e) {
      bridge.destroy();
    }
    String log = System.getProperty("ichedge.bridge.log");
    if (log != null && !log.isEmpty()) {
      StringBuilder line = new StringBuilder("{\"calls\": {");
      boolean first = true;
      for (Map.Entry<String, Integer> entry : calls.entrySet()) {
        line.append(first ? "" : ", ").append(quote(entry.getKey())).append(": ").append(entry.getValue());
        first = false;
      }
      line.append("}, \"num_threads\": ").append(options.numThreads)
          .append(", \"use_xnnpack\": ").append(options.useXNNPACK).append("}\n");
      try (FileWriter writer = new FileWriter(log, true)) {
        writer.write(line.toString());
      } catch (IOException e) {
        throw new IllegalStateException("cannot write " + log + ": " + e, e);
      }
    }
  }

  private String readHeader() {
    ByteArrayOutputStream line = new ByteArrayOutputStream();
    try {
      for (int b = fromBridge.read(); b != '\n'; b = fromBridge.read()) {
        if (b < 0) {
          return "{\"error\": \"the LiteRT bridge exited (its stderr is above)\"}";
        }
        line.write(b);
      }
    } catch (IOException e) {
      return "{\"error\": \"" + e + "\"}";
    }
    return line.toString(StandardCharsets.UTF_8);
  }

  private static String quote(String text) {
    return "\"" + text.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
  }
}
