#!/usr/bin/env node
// Tokenizes every .lpn file in the repository with the TextMate grammar, as
// VS Code does (vscode-textmate + the Oniguruma regex engine), and fails on:
//
// - a gap: a non-whitespace character whose only scopes are the root
//   `source.lpn` and `meta.*` containers, i.e. that no rule of the grammar
//   gave a meaning (inside a block, a character no pattern matches still
//   carries the block's `meta.` scope, so the root scope alone is not enough
//   to find gaps);
// - an `invalid.*` scope in a file the parser accepts. The grammar marks
//   characters that no rule takes as `invalid.illegal`, which is right in a
//   file with a syntax error (E0001) or a lookalike character (E0070), and a
//   bug anywhere else. Which UI inputs have those errors is read from their
//   snapshots in tests/snapshots/; the examples and benchmark nets have none.
//
// Not run in CI (it needs npm): `npm ci && node test/scopes.js` in
// editors/vscode. Extra arguments: files to tokenize instead of the repo's.
'use strict';

const fs = require('fs');
const path = require('path');
const { tokenizeLines, REPO_ROOT } = require('./tokenize');

function lpnFiles(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (['node_modules', 'target', '.git'].includes(entry.name)) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...lpnFiles(full));
    else if (entry.name.endsWith('.lpn')) out.push(full);
  }
  return out.sort();
}

// Whether the parser rejects the file (so `invalid` scopes are expected):
// a UI input whose snapshot reports a syntax error or a lookalike character,
// or a fuzz regression (inputs made to break the parser).
function expectsInvalid(file) {
  const rel = path.relative(REPO_ROOT, file).split(path.sep).join('/');
  if (rel.startsWith('tests/fuzz_regressions/')) return true;
  if (!rel.startsWith('tests/ui/')) return false;
  const snap = path.join(
    REPO_ROOT,
    'tests/snapshots',
    `ui__ui_diagnostics_match_snapshots@${path.basename(file)}.snap`
  );
  if (!fs.existsSync(snap)) return false;
  return /\b(E0001|E0070)\b/.test(fs.readFileSync(snap, 'utf8'));
}

function isContainer(scope) {
  return scope === 'source.lpn' || scope.startsWith('meta.');
}

async function main() {
  const args = process.argv.slice(2);
  const files = args.length ? args.map((f) => path.resolve(f)) : lpnFiles(REPO_ROOT);
  const problems = [];
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    const lines = await tokenizeLines(text);
    const allowInvalid = expectsInvalid(file);
    const rel = path.relative(process.cwd(), file);
    lines.forEach(({ line, tokens }, lineIndex) => {
      for (const token of tokens) {
        const piece = line.slice(token.startIndex, token.endIndex);
        const firstChar = piece.search(/\S/);
        if (firstChar < 0) continue;
        const where = `${rel}:${lineIndex + 1}:${token.startIndex + firstChar + 1}`;
        const shown = JSON.stringify(piece.trim().length > 40 ? `${piece.trim().slice(0, 40)}…` : piece.trim());
        if (token.scopes.every(isContainer)) {
          problems.push(`${where}: no scope for ${shown} (only ${token.scopes.join(' ')})`);
        } else if (!allowInvalid && token.scopes.some((s) => s.startsWith('invalid.'))) {
          problems.push(`${where}: ${shown} marked ${token.scopes.join(' ')} in a file the parser accepts`);
        }
      }
    });
  }
  for (const p of problems) console.log(p);
  console.log(`${files.length} files tokenized, ${problems.length} problems`);
  process.exit(problems.length ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(2);
});
