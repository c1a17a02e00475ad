/**
 * Stage names written into profiles must be stages of the active rule set's funnel: a typo
 * (`awre`) or another team's ladder would otherwise sit in the funnel counts as a stage of its
 * own. Stages already stored that a later rule set dropped stay readable (off the ladder).
 */
import { ClientError } from '../errors.js';

/** The first stage in `stages` (brand -> stage; null deletes) that is not on `funnel`, as an error. */
export function unknownStage(
  stages: Readonly<Record<string, string | null>> | undefined,
  funnel: readonly string[],
): ClientError | null {
  if (stages === undefined || stages === null) return null;
  for (const brand of Object.keys(stages)) {
    const stage = stages[brand];
    if (stage === null || stage === undefined || funnel.includes(stage)) continue;
    return new ClientError(
      'invalid_field',
      `${JSON.stringify(stage)} is not a stage of the active rule set's funnel (${funnel.join(', ')})`,
      `stages.${brand}`,
    );
  }
  return null;
}
