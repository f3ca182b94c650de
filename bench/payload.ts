/** Bench inputs: sizes and a deterministic, JSON-like ASCII text of an exact length. */

/** Value sizes every section measures, in bytes. */
export const SIZES = [1024, 64 * 1024, 1024 * 1024] as const;

/** `1 KB`, `64 KB`, `1 MB`. */
export function sizeLabel(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)} MB` : `${bytes / 1024} KB`;
}

/**
 * A response-body-like text of exactly `bytes` characters (all ASCII, so also `bytes` bytes):
 * a valid JSON array of records, the last one padded to length. Deterministic, so runs compare.
 */
export function jsonText(bytes: number): string {
  const closing = '{"pad":""}]';
  const parts: string[] = ["["];
  let length = 1;
  let seed = 0x2545f491;
  for (let id = 0; ; id++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const record = `{"id":${id},"name":"user-${seed.toString(36)}","score":${seed % 1000},"tags":["a","b"]},`;
    if (length + record.length + closing.length > bytes) break;
    parts.push(record);
    length += record.length;
  }
  parts.push(`{"pad":"${"x".repeat(bytes - length - closing.length)}"}]`);
  return parts.join("");
}
