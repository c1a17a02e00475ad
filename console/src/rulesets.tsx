/**
 * Rule sets: the stored versions (who, when, checksum), the activation log, the difference
 * between any two, an editor checked as one types, and upload, activation and roll back, each
 * confirmed with what it changes.
 */
import type { EditorView } from '@codemirror/view';
import { useEffect, useRef, useState } from 'preact/hooks';
import { call, type RuleError, type RuleSetDiffAnswer, sourceType, type VersionList } from './api';
import { Confirm, ErrorBox, RuleErrorList, useCall, when } from './components';
import type { Checked } from './editor';

/** The semantic difference, in lists a person reads. */
export function DiffSummary({ diff }: { diff: RuleSetDiffAnswer }) {
  if (!diff.changed)
    return <p class="no-change">No change in meaning (only layout, comments or key order differ).</p>;
  const list = (kind: string, d: RuleSetDiffAnswer['campaigns']) => (
    <>
      {d.added.map((id) => (
        <li key={`+${id}`} class="added">
          {kind} <code>{id}</code> added
        </li>
      ))}
      {d.removed.map((id) => (
        <li key={`-${id}`} class="removed">
          {kind} <code>{id}</code> removed
        </li>
      ))}
      {d.changed.map((c) => (
        <li key={`~${c.id}`} class="changed">
          {kind} <code>{c.id}</code> changed: {c.fields.join(', ')}
          {c.creatives !== undefined && (
            <ul>
              {c.creatives.added.map((id) => (
                <li key={`+${id}`} class="added">
                  creative <code>{id}</code> added
                </li>
              ))}
              {c.creatives.removed.map((id) => (
                <li key={`-${id}`} class="removed">
                  creative <code>{id}</code> removed
                </li>
              ))}
              {c.creatives.changed.map((x) => (
                <li key={`~${x.id}`} class="changed">
                  creative <code>{x.id}</code> changed: {x.fields.join(', ')}
                </li>
              ))}
            </ul>
          )}
        </li>
      ))}
    </>
  );
  return (
    <ul class="diff-summary" aria-label="What changes">
      {list('campaign', diff.campaigns)}
      {list('segment', diff.segments)}
      {diff.fields.map((f) => (
        <li key={f} class="changed">
          <code>{f}</code> changed
        </li>
      ))}
    </ul>
  );
}

/** The unified text diff, coloured by line. */
export function TextDiff({ text }: { text: string | null }) {
  if (text === null)
    return <p>The text difference is too large to compute here; the summary above is complete.</p>;
  const lines = text.split('\n').filter((l) => !l.startsWith('====='));
  return (
    <pre class="text-diff">
      {lines.map((l, i) => (
        <span
          key={i}
          class={
            l.startsWith('+++') || l.startsWith('---')
              ? 'file'
              : l.startsWith('+')
                ? 'add'
                : l.startsWith('-')
                  ? 'del'
                  : l.startsWith('@@')
                    ? 'hunk'
                    : ''
          }
        >
          {l}
          {'\n'}
        </span>
      ))}
    </pre>
  );
}

/** Where the editor's unsaved draft is kept for the tab. */
const DRAFT_KEY = 'mindshare.console.draft';

const label = (v: number | null) => (v === null ? 'the draft' : `version ${v}`);

interface Pending {
  title: string;
  confirmLabel: string;
  diff: RuleSetDiffAnswer | null;
  note?: string;
  run: () => Promise<string>;
}

export function RuleSetsPage({ canWrite }: { canWrite: boolean }) {
  const list = useCall<VersionList>();
  const diff = useCall<RuleSetDiffAnswer>();
  const action = useCall<string>();
  const [from, setFrom] = useState<number | null>(null);
  const [to, setTo] = useState<number | null>(null);
  const [pending, setPending] = useState<Pending | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [checked, setChecked] = useState<Checked | null>(null);
  const [activateAfter, setActivateAfter] = useState(false);
  const draft = useRef('');
  const editorBox = useRef<HTMLDivElement>(null);
  const editor = useRef<EditorView | null>(null);

  const reload = () =>
    list.run(async () => {
      const l = await call<VersionList>('/v1/rulesets');
      if (l.versions.length > 0) {
        setTo((t) => t ?? l.active ?? l.versions[0]!.version);
        setFrom((f) => f ?? l.versions[1]?.version ?? l.versions[0]!.version);
      }
      return l;
    });

  useEffect(() => {
    void reload();
  }, []);

  // The editor (CodeMirror, most of the console's code) is loaded only here, when it is offered.
  const editorModule = useRef<typeof import('./editor') | null>(null);
  const [editorError, setEditorError] = useState<unknown>(null);
  const goToIssue = (r: RuleError) => {
    if (editor.current !== null) editorModule.current?.goTo(editor.current, r);
  };
  useEffect(() => {
    if (!canWrite) return;
    let gone = false;
    void Promise.all([import('./editor'), call<string>('/v1/rulesets/active').catch(() => '')])
      .then(([m, text]) => {
        if (gone || editorBox.current === null || editor.current !== null) return;
        editorModule.current = m;
        editor.current = m.createEditor(editorBox.current, '', setChecked, (t) => {
          draft.current = t;
          // Kept for this tab: a session that ends (sign-in again) does not lose the draft.
          if (t !== text) sessionStorage.setItem(DRAFT_KEY, t);
          else sessionStorage.removeItem(DRAFT_KEY);
        });
        // Start from the draft this tab was editing, else the active version's text.
        const kept = sessionStorage.getItem(DRAFT_KEY);
        if (kept !== null && kept !== '') {
          m.setText(editor.current, kept);
          setDone('Your unsaved draft is back in the editor.');
        } else if (text !== '') m.setText(editor.current, text);
      })
      .catch(setEditorError);
    return () => {
      gone = true;
      editor.current?.destroy();
      editor.current = null;
    };
  }, [canWrite]);

  const compare = (a: number, b: number) =>
    diff.run((signal) => call<RuleSetDiffAnswer>(`/v1/rulesets/diff?from=${a}&to=${b}`, { signal }));

  const compareDraft = () =>
    diff.run((signal) =>
      call<RuleSetDiffAnswer>('/v1/rulesets/diff', {
        body: draft.current,
        type: sourceType(draft.current),
        signal,
      }),
    );

  const ask = async (p: Omit<Pending, 'diff'>, diffPath: string | null, body?: string) => {
    setDone(null);
    action.setError(null);
    let d: RuleSetDiffAnswer | null = null;
    try {
      if (diffPath !== null) {
        d =
          body === undefined
            ? await call<RuleSetDiffAnswer>(diffPath)
            : await call<RuleSetDiffAnswer>(diffPath, { body, type: sourceType(body) });
      }
    } catch (e) {
      action.setError(e);
      return;
    }
    setPending({ ...p, diff: d });
  };

  const confirm = async () => {
    const p = pending;
    setPending(null);
    if (p === null) return;
    const message = await action.run(() => p.run());
    if (message !== null) {
      setDone(message);
      await reload();
    }
  };

  const activeVersion = list.result?.active ?? null;

  const activate = (v: number) =>
    ask(
      {
        title: `Activate version ${v}?`,
        confirmLabel: `Activate version ${v}`,
        note:
          activeVersion === null
            ? 'No version is active yet.'
            : `Every instance switches from version ${activeVersion} to version ${v} within seconds.`,
        run: async () => {
          // Only over the version the dialog compared against (409 if another change came first).
          const only = activeVersion === null ? '' : `?ifActive=${activeVersion}`;
          await call(`/v1/rulesets/${v}/activate${only}`, { method: 'POST' });
          return `Version ${v} is active.`;
        },
      },
      activeVersion === null ? null : `/v1/rulesets/diff?from=${activeVersion}&to=${v}`,
    );

  const rollback = (target: number) =>
    ask(
      {
        title: `Roll back to version ${target}?`,
        confirmLabel: `Roll back to version ${target}`,
        note: `Undoes the last activation: version ${activeVersion} is replaced by version ${target} on every instance.`,
        run: async () => {
          // Only from the version the dialog compared against (409 if another change came first).
          const r = await call<{ version: number; from: number }>(
            `/v1/rulesets/rollback?ifActive=${activeVersion}`,
            {
              method: 'POST',
            },
          );
          return `Rolled back from version ${r.from} to version ${r.version}.`;
        },
      },
      `/v1/rulesets/diff?from=${activeVersion}&to=${target}`,
    );

  const upload = () => {
    const text = draft.current;
    return ask(
      {
        title: activateAfter ? 'Upload and activate this draft?' : 'Upload this draft?',
        confirmLabel: activateAfter ? 'Upload and activate' : 'Upload',
        note: activateAfter
          ? 'It is stored as a new version and becomes active on every instance.'
          : 'It is stored as a new version; the active version does not change.',
        run: async () => {
          const r = await call<{ version: number; active: boolean }>(
            `/v1/rulesets${activateAfter ? `?activate=true${activeVersion === null ? '' : `&ifActive=${activeVersion}`}` : ''}`,
            { body: text, type: sourceType(text) },
          );
          sessionStorage.removeItem(DRAFT_KEY);
          return `Stored as version ${r.version}${r.active ? ', now active' : ''}.`;
        },
      },
      activeVersion === null ? null : '/v1/rulesets/diff',
      text,
    );
  };

  const versions = list.result?.versions ?? [];
  return (
    <section aria-labelledby="rulesets-title">
      <h1 id="rulesets-title">Rule sets</h1>
      <ErrorBox error={list.error} />
      <ErrorBox error={action.error} />
      {done !== null && (
        <p class="done" role="status">
          {done}
        </p>
      )}
      {list.result !== null && (
        <p>
          Active in the store: <strong>{activeVersion === null ? 'none' : `version ${activeVersion}`}</strong>
          ; this instance decides with version {list.result.serving}.{' '}
          {canWrite && list.result.rollbackTo !== null && (
            <button type="button" onClick={() => rollback(list.result!.rollbackTo!)}>
              Roll back to version {list.result.rollbackTo}
            </button>
          )}
        </p>
      )}
      <table class="versions">
        <caption>Stored versions, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Uploaded</th>
            <th scope="col">Checksum</th>
            <th scope="col">Last activated</th>
            <th scope="col">Compare</th>
            {canWrite && <th scope="col">Action</th>}
          </tr>
        </thead>
        <tbody>
          {versions.map((v) => (
            <tr key={v.version} class={v.active ? 'active' : ''}>
              <th scope="row">
                {v.version}
                {v.active && <span class="badge">active</span>}
              </th>
              <td>
                {v.createdBy}, {when(v.createdAt)}
              </td>
              <td>
                <code title={v.checksum}>{v.checksum.slice(0, 19)}…</code>
              </td>
              <td>{v.activatedAt === undefined ? '—' : `${v.activatedBy}, ${when(v.activatedAt)}`}</td>
              <td class="pick">
                <label>
                  <input
                    type="radio"
                    name="from"
                    aria-label={`compare from version ${v.version}`}
                    checked={from === v.version}
                    onChange={() => setFrom(v.version)}
                  />{' '}
                  from
                </label>{' '}
                <label>
                  <input
                    type="radio"
                    name="to"
                    aria-label={`compare to version ${v.version}`}
                    checked={to === v.version}
                    onChange={() => setTo(v.version)}
                  />{' '}
                  to
                </label>
              </td>
              {canWrite && (
                <td>
                  {!v.active && (
                    <button type="button" onClick={() => activate(v.version)}>
                      Activate {v.version}
                    </button>
                  )}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      <p>
        <button
          type="button"
          disabled={from === null || to === null}
          onClick={() => from !== null && to !== null && compare(from, to)}
        >
          Compare version {from ?? '…'} with version {to ?? '…'}
        </button>
      </p>
      {(list.result?.activations.length ?? 0) > 0 && (
        <details>
          <summary>Activation log</summary>
          <ol class="activations">
            {list.result!.activations.map((a, i) => (
              <li key={i}>
                {when(a.at)}: version {a.version} {a.rollback ? 'rolled back to' : 'activated'} by {a.by}
              </li>
            ))}
          </ol>
        </details>
      )}

      <section aria-labelledby="diff-title" aria-live="polite">
        <h2 id="diff-title">Difference</h2>
        <ErrorBox error={diff.error} />
        {diff.busy && <p role="status">Comparing…</p>}
        {diff.result !== null && (
          <>
            <p>
              From {label(diff.result.from.version)} to {label(diff.result.to.version)}:
            </p>
            <DiffSummary diff={diff.result} />
            <details open>
              <summary>Text</summary>
              <TextDiff text={diff.result.text} />
            </details>
          </>
        )}
        {diff.result === null && !diff.busy && (
          <p>Pick two versions and compare, or compare the draft below.</p>
        )}
      </section>

      {canWrite ? (
        <section aria-labelledby="editor-title">
          <h2 id="editor-title">Editor</h2>
          <p class="hint">
            Checked as you type by the server's validator; errors are marked at their line. Tab moves to the
            next control.
          </p>
          <ErrorBox error={editorError} />
          <div ref={editorBox} class="editor" />
          <div class="check" role="status" aria-live="polite">
            {checked === null ? (
              'Not checked yet.'
            ) : checked.valid ? (
              <span class="valid">
                Valid: {checked.summary?.segments} segments, {checked.summary?.campaigns} campaigns
                {checked.warnings.length > 0
                  ? `; ${checked.warnings.length} warning${checked.warnings.length === 1 ? '' : 's'}`
                  : ''}
                .
              </span>
            ) : checked.errors.length > 0 ? (
              <span class="invalid">
                {checked.errors.length} error{checked.errors.length === 1 ? '' : 's'}.
              </span>
            ) : checked.error !== undefined ? (
              <ErrorBox error={checked.error} />
            ) : (
              'Empty.'
            )}
          </div>
          {checked !== null && checked.errors.length > 0 && (
            <RuleErrorList
              label="Errors in the draft"
              className="editor-errors"
              items={checked.errors}
              go={goToIssue}
            />
          )}
          {checked !== null && checked.warnings.length > 0 && (
            <RuleErrorList
              label="Warnings"
              className="editor-errors warnings"
              items={checked.warnings}
              go={goToIssue}
            />
          )}
          <div class="actions">
            <button type="button" onClick={compareDraft}>
              Compare the draft with the active version
            </button>{' '}
            <label>
              <input
                type="checkbox"
                checked={activateAfter}
                onChange={(e) => setActivateAfter((e.target as HTMLInputElement).checked)}
              />{' '}
              activate after upload
            </label>{' '}
            <button type="button" class="primary" disabled={checked?.valid !== true} onClick={upload}>
              Upload the draft
            </button>
          </div>
        </section>
      ) : (
        <p>Your token cannot change rule sets (it lacks rules:write): versions and differences only.</p>
      )}

      {pending !== null && (
        <Confirm
          title={pending.title}
          confirmLabel={pending.confirmLabel}
          onConfirm={confirm}
          onCancel={() => setPending(null)}
        >
          {pending.note !== undefined && <p>{pending.note}</p>}
          {pending.diff !== null && (
            <>
              <p>
                What changes from {label(pending.diff.from.version)} to {label(pending.diff.to.version)}:
              </p>
              <DiffSummary diff={pending.diff} />
            </>
          )}
        </Confirm>
      )}
    </section>
  );
}
