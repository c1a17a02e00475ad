/**
 * The rule-set editor: CodeMirror 6 with YAML, checked as one types through the control plane's
 * validate route (the server's own parser: the same errors an upload would get), each error
 * marked at its line and column.
 */
import { yaml } from '@codemirror/lang-yaml';
import { type Diagnostic, linter, lintGutter } from '@codemirror/lint';
import { EditorView } from '@codemirror/view';
import { basicSetup } from 'codemirror';
import { ApiError, call, type RuleError, sourceType } from './api';

export interface Checked {
  /** The text checked. */
  text: string;
  valid: boolean;
  summary?: { segments: number; campaigns: number; checksum: string };
  /** A refusal that is not about the rule set (no token scope, no server). */
  error?: unknown;
  errors: RuleError[];
  /** What a valid rule set probably did not mean (it is valid all the same). */
  warnings: RuleError[];
}

/** The offset of a 1-based line and column in the document (clamped to it). */
function offsetOf(view: EditorView, e: RuleError): { from: number; to: number } {
  const doc = view.state.doc;
  if (e.line === undefined) return { from: 0, to: Math.min(doc.length, doc.line(1).to) };
  const line = doc.line(Math.min(Math.max(1, e.line), doc.lines));
  const from = Math.min(line.to, line.from + Math.max(0, (e.column ?? 1) - 1));
  return { from, to: Math.max(from, line.to) };
}

export function createEditor(
  parent: HTMLElement,
  text: string,
  onChecked: (c: Checked) => void,
  onChange: (text: string) => void,
): EditorView {
  const check = linter(
    async (view) => {
      const text = view.state.doc.toString();
      if (text.trim() === '') {
        onChecked({ text, valid: false, errors: [], warnings: [] });
        return [];
      }
      // A reply about an older text says nothing of this one (the linter asks again).
      const stale = () => view.state.doc.toString() !== text;
      const mark = (r: RuleError, severity: 'error' | 'warning'): Diagnostic => ({
        ...offsetOf(view, r),
        severity,
        message: `${r.path === '' ? '' : `${r.path}: `}${r.message} [${r.code}]`,
        source: 'validate',
      });
      try {
        const r = await call<{
          segments: number;
          campaigns: number;
          checksum: string;
          warnings?: RuleError[];
        }>('/v1/rulesets/validate', { body: text, type: sourceType(text) });
        const warnings = r.warnings ?? [];
        if (stale()) return [];
        onChecked({ text, valid: true, summary: r, errors: [], warnings });
        return warnings.map((w) => mark(w, 'warning'));
      } catch (e) {
        if (stale()) return [];
        if (!(e instanceof ApiError) || e.errors.length === 0) {
          onChecked({ text, valid: false, error: e, errors: [], warnings: [] });
          return [];
        }
        onChecked({ text, valid: false, errors: e.errors, warnings: [] });
        return e.errors.map((r) => mark(r, 'error'));
      }
    },
    { delay: 400 },
  );
  return new EditorView({
    doc: text,
    parent,
    extensions: [
      basicSetup,
      yaml(),
      lintGutter(),
      check,
      EditorView.contentAttributes.of({ 'aria-label': 'Rule set source (YAML or JSON)' }),
      EditorView.updateListener.of((u) => {
        if (u.docChanged) onChange(u.state.doc.toString());
      }),
    ],
  });
}

/** Puts the cursor at an error's place, scrolled into view, and focuses the editor. */
export function goTo(view: EditorView, e: RuleError): void {
  const { from } = offsetOf(view, e);
  view.dispatch({ selection: { anchor: from }, scrollIntoView: true });
  view.focus();
}

/** Replaces the editor's whole text. */
export function setText(view: EditorView, text: string): void {
  view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
}
