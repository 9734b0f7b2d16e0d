// Runs the generated IchEdgeModel.kt on the JVM: the "app" side of tests/apps/test_kotlin_snippet.py.
//
//   java -cp <double classes>:<snippet classes>:kotlin-stdlib.jar \
//        -Dichedge.bridge.script=apps/jvm/litert_bridge.py org.ichedge.apptest.RunSampleKt MODEL JOBS OUT_DIR
//
// JOBS (big-endian, java.io.DataInputStream) is written by the test: an int job count, then per job
// its name (writeUTF) and kind: 0 = preprocessed images (int n, int size, n*size*size*3 bytes) fed
// to predictSeries(); 1 = decoded DICOM slices fed to predict(), the whole pipeline from stored
// values on, input checks included: int n; per slice int rows, int columns, int hasSlope,
// float slope, int hasIntercept, float intercept, int hasPadding, int paddingValue,
// int paddingRangeLimit, int hasHeight, double heightMm, int hasOrientation, 6 doubles,
// int hasThickness, double sliceThicknessMm, int hasPixelSpacing, 2 doubles (row, column spacing),
// UTF imageType (values joined by a backslash; empty: absent), UTF patientId (empty: absent),
// UTF contrastAgent ((0018,0010) Contrast/Bolus Agent; empty: absent), UTF sopInstanceUid,
// rows*columns ints of stored values. Every job runs on ONE IchEdgeModel, in order.
// OUT_DIR gets results.json (per job: slice and study probabilities, null when not judged; for
// kind 1 also the verdict, its reasons, the skipped slices, the positive labels, whether toHu refuses
// the first slice, and the slice ids after sorting) and, for a judged kind-1 job, <name>.images.u8: the preprocessed slices, bottom to top.
package org.ichedge.apptest

import org.ichedge.demo.CtSlice
import org.ichedge.demo.IchEdgeModel
import org.ichedge.demo.IchEdgePreprocessing
import java.io.BufferedInputStream
import java.io.DataInputStream
import java.io.File
import java.io.FileInputStream

private fun floats(values: FloatArray) = values.joinToString(", ", "[", "]") { it.toString() }

private fun quoted(text: String) = "\"" + text.replace("\\", "\\\\").replace("\"", "\\\"") + "\""

private fun strings(values: List<String>) = values.joinToString(", ", "[", "]") { quoted(it) }

private fun probabilities(slices: Array<FloatArray>?) = slices?.joinToString(", ", "[", "]") { floats(it) } ?: "null"

private fun readSlice(input: DataInputStream): CtSlice {
    val rows = input.readInt()
    val columns = input.readInt()
    val hasSlope = input.readInt() == 1
    val slope = input.readFloat()
    val hasIntercept = input.readInt() == 1
    val intercept = input.readFloat()
    val hasPadding = input.readInt() == 1
    val paddingValue = input.readInt()
    val paddingRangeLimit = input.readInt()
    val hasHeight = input.readInt() == 1
    val heightMm = input.readDouble()
    val hasOrientation = input.readInt() == 1
    val orientation = DoubleArray(6) { input.readDouble() }
    val hasThickness = input.readInt() == 1
    val thickness = input.readDouble()
    val hasPixelSpacing = input.readInt() == 1
    val pixelSpacing = DoubleArray(2) { input.readDouble() }
    val imageType = input.readUTF()
    val patientId = input.readUTF()
    val contrastAgent = input.readUTF()
    val uid = input.readUTF()
    val stored = IntArray(rows * columns) { input.readInt() }
    return CtSlice(
        stored = stored, rows = rows, columns = columns,
        rescaleSlope = if (hasSlope) slope else null,
        rescaleIntercept = if (hasIntercept) intercept else null,
        paddingValue = if (hasPadding) paddingValue else null,
        paddingRangeLimit = if (hasPadding) paddingRangeLimit else null,
        heightMm = if (hasHeight) heightMm else null,
        sopInstanceUid = uid,
        imageOrientation = if (hasOrientation) orientation else null,
        imageType = if (imageType.isEmpty()) null else imageType.split("\\"),
        patientId = patientId.ifEmpty { null },
        sliceThicknessMm = if (hasThickness) thickness else null,
        pixelSpacingMm = if (hasPixelSpacing) pixelSpacing else null,
        contrastAgent = contrastAgent.ifEmpty { null },
    )
}

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
                if (kind == 0) {
                    val size = input.readInt()
                    val images = List(n) { ByteArray(size * size * 3).also { input.readFully(it) } }
                    val slices = model.predictSeries(images)
                    results += "{\"name\": ${quoted(name)}, \"slices\": ${probabilities(slices)}, " +
                        "\"study\": ${floats(model.studyProbabilities(slices))}}"
                    return@repeat
                }
                val ctSlices = List(n) { readSlice(input) }
                val result = model.predict(ctSlices)
                // toHu on its own must refuse a slice whose HU are unknown, not assume slope 1, intercept 0.
                val toHuRefuses = try {
                    IchEdgePreprocessing.toHu(ctSlices[0]); false
                } catch (e: IllegalArgumentException) {
                    true
                }
                if (result.sliceProbabilities != null) {
                    File(outDir, "$name.images.u8").outputStream().use { out ->
                        for (slice in result.slices) out.write(IchEdgePreprocessing.preprocess(slice))
                    }
                }
                results += "{\"name\": ${quoted(name)}, \"slices\": ${probabilities(result.sliceProbabilities)}, " +
                    "\"study\": ${result.studyProbabilities?.let { floats(it) } ?: "null"}, " +
                    "\"verdict\": ${quoted(result.verdict.name)}, \"reasons\": ${strings(result.reasons)}, " +
                    "\"skipped\": ${strings(result.skipped)}, \"positive\": ${strings(result.positiveLabels)}, " +
                    "\"to_hu_refuses\": $toHuRefuses, \"ids\": ${strings(result.slices.map { it.sopInstanceUid })}}"
            }
        }
    }
    File(outDir, "results.json").writeText(results.joinToString(",\n", "{\"jobs\": [\n", "\n]}\n"))
}
