// Runs the generated IchEdgeModel.kt on the JVM: the "app" side of tests/apps/test_kotlin_snippet.py.
//
//   java -cp <double classes>:<snippet classes>:kotlin-stdlib.jar \
//        -Dichedge.bridge.script=apps/jvm/litert_bridge.py org.ichedge.apptest.RunSampleKt MODEL JOBS OUT_DIR
//
// JOBS (big-endian, java.io.DataInputStream) is written by the test: an int job count, then per job
// its name (writeUTF) and kind: 0 = preprocessed images (int n, int size, n*size*size*3 bytes) fed
// to predictSeries(); 1 = decoded DICOM slices (int n; per slice int rows, int columns,
// float slope, float intercept, int hasPadding, int paddingValue, int paddingRangeLimit,
// double heightMm, UTF sopInstanceUid, rows*columns ints of stored values) fed to predict(),
// the whole pipeline from stored values on. Every job runs on ONE IchEdgeModel, in order.
// OUT_DIR gets results.json (per job: slice and study probabilities, and for kind 1 the slice ids
// after sorting) and, for kind 1, <name>.images.u8: the preprocessed slices, bottom to top.
package org.ichedge.apptest

import org.ichedge.demo.CtSlice
import org.ichedge.demo.IchEdgeModel
import org.ichedge.demo.IchEdgePreprocessing
import java.io.BufferedInputStream
import java.io.DataInputStream
import java.io.File
import java.io.FileInputStream

private fun floats(values: FloatArray) = values.joinToString(", ", "[", "]") { it.toString() }

fun main(args: Array<String>) {
    require(args.size == 3) { "usage: RunSampleKt MODEL JOBS OUT_DIR" }
    val outDir = File(args[2]).apply { mkdirs() }
    val results = mutableListOf<String>()
    IchEdgeModel(File(args[0])).use { model ->
        DataInputStream(BufferedInputStream(FileInputStream(args[1]))).use { input ->
            repeat(input.readInt()) {
                val name = input.readUTF()
                val kind = input.readInt()
                val n = input.readInt()
                val slices: Array<FloatArray>
                var ids = ""
                if (kind == 0) {
                    val size = input.readInt()
                    val images = List(n) { ByteArray(size * size * 3).also { input.readFully(it) } }
                    slices = model.predictSeries(images)
                } else {
                    val ctSlices = List(n) {
                        val rows = input.readInt()
                        val columns = input.readInt()
                        val slope = input.readFloat()
                        val intercept = input.readFloat()
                        val hasPadding = input.readInt() == 1
                        val paddingValue = input.readInt()
                        val paddingRangeLimit = input.readInt()
                        val heightMm = input.readDouble()
                        val uid = input.readUTF()
                        val stored = IntArray(rows * columns) { input.readInt() }
                        CtSlice(stored, rows, columns, slope, intercept,
                                if (hasPadding) paddingValue else null, if (hasPadding) paddingRangeLimit else null,
                                heightMm, uid)
                    }
                    slices = model.predict(ctSlices)
                    val sorted = ctSlices.sortedBy { it.heightMm }
                    File(outDir, "$name.images.u8").outputStream().use { out ->
                        for (slice in sorted) out.write(IchEdgePreprocessing.preprocess(slice))
                    }
                    ids = sorted.joinToString(", ", ", \"ids\": [", "]") { "\"${it.sopInstanceUid}\"" }
                }
                val study = model.studyProbabilities(slices)
                results += "{\"name\": \"$name\", \"slices\": ${slices.joinToString(", ", "[", "]") { floats(it) }}, " +
                    "\"study\": ${floats(study)}$ids}"
            }
        }
    }
    File(outDir, "results.json").writeText(results.joinToString(",\n", "{\"jobs\": [\n", "\n]}\n"))
}
