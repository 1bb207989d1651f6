// Tokenizes .lpn text with syntaxes/lpn.tmLanguage.json the way VS Code does
// (vscode-textmate on the Oniguruma engine). Shared by test/scopes.js and the
// screenshot renderer (editors/screenshot/render.js).
'use strict';

const fs = require('fs');
const path = require('path');
const vsctm = require('vscode-textmate');
const oniguruma = require('vscode-oniguruma');

const GRAMMAR_PATH = path.join(__dirname, '..', 'syntaxes', 'lpn.tmLanguage.json');
const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

let grammarPromise = null;

function loadGrammar() {
  if (grammarPromise) return grammarPromise;
  const wasm = fs.readFileSync(require.resolve('vscode-oniguruma/release/onig.wasm'));
  const onigLib = oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength)).then(() => ({
    createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
    createOnigString: (s) => new oniguruma.OnigString(s),
  }));
  const registry = new vsctm.Registry({
    onigLib,
    loadGrammar: async (scopeName) => {
      if (scopeName !== 'source.lpn') return null;
      return vsctm.parseRawGrammar(fs.readFileSync(GRAMMAR_PATH, 'utf8'), GRAMMAR_PATH);
    },
  });
  grammarPromise = registry.loadGrammar('source.lpn');
  return grammarPromise;
}

// One entry per line: the line's text and its tokens
// ({ startIndex, endIndex, scopes }), carrying the rule stack across lines.
async function tokenizeLines(text) {
  const grammar = await loadGrammar();
  let ruleStack = vsctm.INITIAL;
  return text.split(/\r?\n/).map((line) => {
    const result = grammar.tokenizeLine(line, ruleStack);
    ruleStack = result.ruleStack;
    return { line, tokens: result.tokens };
  });
}

module.exports = { tokenizeLines, REPO_ROOT, GRAMMAR_PATH };
