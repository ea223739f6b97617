// Times one ONNX model in ONNX Runtime (npm onnxruntime-node, CPU) for the peer
// benchmark: node ort_time.js MODEL.onnx THREADS RUNS -> "ort_encoder_s <median>" and
// each run's time. Input: one float32 1 x 3 x 1024 x 1024 tensor named "image".
const ort = require('onnxruntime-node');

async function main() {
  const [model, threads, runs] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  });
  const data = new Float32Array(3 * 1024 * 1024).map(() => Math.random() * 2 - 1);
  const feeds = { image: new ort.Tensor('float32', data, [1, 3, 1024, 1024]) };
  await session.run(feeds);  // warm-up
  const times = [];
  for (let i = 0; i < runs; ++i) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const sorted = [...times].sort((a, b) => a - b);
  console.log(`ort runs ${times.map((t) => t.toFixed(3)).join(' ')}`);
  console.log(`ort_encoder_s ${sorted[Math.floor(sorted.length / 2)].toFixed(3)}`);
}

main().catch((e) => { console.error(`ort_time: ${e.message}`); process.exit(1); });
