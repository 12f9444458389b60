// Runs ONNX models in ONNX Runtime (the npm package onnxruntime-node, CPU) for the peer tests:
//   node ort_run.js MODEL INPUT.npy PREFIX [MODEL INPUT.npy PREFIX ...]
// feeds each model's first input with the float32 array of INPUT.npy and writes output k as
// PREFIX.<k>.npy. NODE_PATH must lead to onnxruntime-node (tests/onnx/peers.sh sets it).
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function readNpy(path) {
  const b = fs.readFileSync(path);
  if (b.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${path}: not a .npy file`);
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = b.toString('latin1', start, start + hlen);
  if (!/'descr':\s*'<f4'/.test(header) || /'fortran_order':\s*True/.test(header))
    throw new Error(`${path}: expected little-endian float32 in C order: ${header}`);
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',').filter((s) => s.trim())
    .map((s) => parseInt(s, 10));
  const off = start + hlen;
  const data = new Float32Array(b.buffer.slice(b.byteOffset + off, b.byteOffset + b.length));
  return { shape, data };
}

function writeNpy(path, shape, data) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1; pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.from(new Float32Array(data).buffer);
  fs.writeFileSync(path, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}

(async () => {
  const args = process.argv.slice(2);
  if (args.length === 0 || args.length % 3 !== 0) {
    console.error('usage: node ort_run.js MODEL INPUT.npy PREFIX [...]');
    process.exit(2);
  }
  for (let i = 0; i < args.length; i += 3) {
    const [model, input, prefix] = args.slice(i, i + 3);
    const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
    const x = readNpy(input);
    const result = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) });
    session.outputNames.forEach((name, k) => writeNpy(`${prefix}.${k}.npy`, result[name].dims, result[name].data));
    console.log(`onnxruntime: ran ${model} on [${x.shape}], outputs ${session.outputNames.join(', ')}`);
  }
})().catch((e) => { console.error(`onnxruntime: ${e.message || e}`); process.exit(1); });
