/**
 * How many rows of `logits` [labels.length, classes] have their argmax at the
 * requested label; null labels (unconditional samples) are not counted.
 * Shared by `torch-guidance compare` and the quality benchmark.
 */
export function classifierAgreement(
  logits: ArrayLike<number>,
  classes: number,
  labels: readonly (number | null)[],
): { agree: number; of: number } {
  let agree = 0;
  let of = 0;
  labels.forEach((label, i) => {
    if (label === null) return;
    of++;
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[i * classes + c]! > logits[i * classes + best]!) best = c;
    if (best === label) agree++;
  });
  return { agree, of };
}
