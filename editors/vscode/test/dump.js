#!/usr/bin/env node
// Prints each token of a .lpn file with its scopes (for checking the grammar
// by eye): `node test/dump.js FILE`.
'use strict';
const fs = require('fs');
const { tokenizeLines } = require('./tokenize');

tokenizeLines(fs.readFileSync(process.argv[2], 'utf8')).then((lines) => {
  lines.forEach(({ line, tokens }, i) => {
    for (const t of tokens) {
      const piece = line.slice(t.startIndex, t.endIndex);
      if (!piece.trim()) continue;
      console.log(`${i + 1}:${t.startIndex + 1}\t${JSON.stringify(piece)}\t${t.scopes.slice(1).join(' ')}`);
    }
  });
});
