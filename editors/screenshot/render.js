#!/usr/bin/env node
// A headless "screenshot" of lpn in an editor, made from the real pieces:
// starts `LPNC lsp`, opens an example with one small edit that introduces an
// error, collects the server's publishDiagnostics and its hover reply at a
// constrained layer, tokenizes the text with the extension's TextMate grammar
// (editors/vscode/syntaxes/lpn.tmLanguage.json) and draws an editor-like SVG:
// highlighted code, a squiggle under each diagnostic, the hover box with the
// server's text and a Problems panel; then a PNG with rsvg-convert.
//
//   (cd editors/vscode && npm ci)
//   node editors/screenshot/render.js --lpnc target/release/lpnc --out docs/editor.png
//
// Options (defaults in brackets):
//   --lpnc PATH       the lpnc binary [lpnc]
//   --file PATH       the .lpn file [examples/gunpoint_classifier.lpn]
//   --replace A=>B    the edit that introduces an error [cross_entropy=>cross_entrpy]
//                     (an error in the train section: one in the model section
//                     would leave the hover without the checked figures)
//   --hover TEXT[+N]  hover N characters into the first TEXT [@lowpass+1]
//   --first-line N    first line shown (1-based) [8, after the header comment]
//   --out PATH        the PNG [editors/screenshot/out/editor.png]
// The SVG and the LSP session (every message, as JSON) go to
// editors/screenshot/out/ (not committed).
'use strict';

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { pathToFileURL } = require('url');
const { LspClient } = require('./lsp');
const { tokenizeLines, REPO_ROOT } = require('../vscode/test/tokenize');
const { drawEditor } = require('./draw');

function parseArgs(argv) {
  const opts = {
    lpnc: 'lpnc',
    file: 'examples/gunpoint_classifier.lpn',
    replace: 'cross_entropy=>cross_entrpy',
    hover: '@lowpass+1',
    firstLine: 8,
    out: path.join(__dirname, 'out', 'editor.png'),
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    const key = { '--lpnc': 'lpnc', '--file': 'file', '--replace': 'replace', '--hover': 'hover', '--first-line': 'firstLine', '--out': 'out' }[flag];
    if (!key) throw new Error(`unknown option ${flag}`);
    opts[key] = key === 'firstLine' ? Number(value) : value;
  }
  return opts;
}

// The edited text, and the LSP position (line, UTF-16 character) to hover.
function prepare(text, replace, hover) {
  const [from, to] = replace.split('=>');
  if (!text.includes(from)) throw new Error(`--replace: "${from}" is not in the file`);
  const edited = text.replace(from, to);
  const [, needle, shift] = /^(.*?)(?:\+(\d+))?$/.exec(hover);
  const at = edited.indexOf(needle);
  if (at < 0) throw new Error(`--hover: "${needle}" is not in the edited file`);
  const offset = at + Number(shift || 0);
  const before = edited.slice(0, offset).split('\n');
  return { edited, position: { line: before.length - 1, character: before[before.length - 1].length } };
}

// Speaks to the server: initialize, didOpen, the diagnostics it publishes
// for the file, a hover; shutdown. Every message is kept for the record.
async function session(lpnc, file, text, position) {
  const transcript = [];
  const client = new LspClient(lpnc, ['lsp'], {
    cwd: REPO_ROOT,
    log: (direction, message) => transcript.push({ direction, message }),
  });
  const uri = pathToFileURL(file).href;
  const init = await client.request('initialize', {
    processId: process.pid,
    rootUri: pathToFileURL(REPO_ROOT).href,
    capabilities: {
      textDocument: {
        hover: { contentFormat: ['markdown', 'plaintext'] },
        publishDiagnostics: { relatedInformation: true, codeDescriptionSupport: true },
        synchronization: { didSave: true },
      },
    },
    clientInfo: { name: 'lpn-screenshot' },
  });
  client.notify('initialized', {});
  const published = client.waitFor('textDocument/publishDiagnostics', (p) => p.uri === uri, 15000);
  client.notify('textDocument/didOpen', { textDocument: { uri, languageId: 'lpn', version: 1, text } });
  const diagnostics = (await published).diagnostics;
  const hover = await client.request('textDocument/hover', { textDocument: { uri }, position });
  const status = await client.shutdown();
  return { init, diagnostics, hover, status, transcript };
}

function hoverMarkdown(hover) {
  if (!hover) return null;
  const c = hover.contents;
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) return c.map((p) => (typeof p === 'string' ? p : p.value)).join('\n\n');
  return c.value;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const file = path.resolve(REPO_ROOT, opts.file);
  const { edited, position } = prepare(fs.readFileSync(file, 'utf8'), opts.replace, opts.hover);
  // A bare name is looked up on PATH; a path is taken from the current folder.
  const lpnc = opts.lpnc.includes('/') ? path.resolve(opts.lpnc) : opts.lpnc;
  const result = await session(lpnc, file, edited, position);
  const outDir = path.join(__dirname, 'out');
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'session.json'), JSON.stringify(result.transcript, null, 2));
  const markdown = hoverMarkdown(result.hover);
  if (!result.diagnostics.length) throw new Error('the server published no diagnostic for the edited file');
  if (!markdown) throw new Error(`no hover at ${JSON.stringify(position)}`);
  const lines = await tokenizeLines(edited);
  const svg = drawEditor({
    title: path.basename(file),
    lines,
    firstLine: opts.firstLine,
    diagnostics: result.diagnostics,
    hover: { position, range: result.hover.range, markdown },
  });
  const svgPath = path.join(outDir, 'editor.svg');
  fs.writeFileSync(svgPath, svg);
  fs.mkdirSync(path.dirname(path.resolve(opts.out)), { recursive: true });
  execFileSync('rsvg-convert', ['--zoom', '1.5', '-o', path.resolve(opts.out), svgPath]);
  console.log(`server: ${JSON.stringify(result.init.serverInfo || {})}, exit ${JSON.stringify(result.status)}`);
  for (const d of result.diagnostics) {
    console.log(`diagnostic ${d.range.start.line + 1}:${d.range.start.character + 1} ${d.code || ''} ${d.message.split('\n')[0]}`);
  }
  console.log(`hover at ${position.line + 1}:${position.character + 1}:\n${markdown}`);
  console.log(`wrote ${svgPath} and ${opts.out}`);
}

main().catch((err) => {
  console.error(err.stack || String(err));
  process.exit(1);
});
