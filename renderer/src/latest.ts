/**
 * For screens that reload on every input change (a date picker fires once per segment typed):
 * only the answer to the latest request is applied, so a slow earlier answer arriving last cannot
 * show one day's figures under another day's date.
 */
export function latestOnly(): <T>(request: Promise<T>, apply: (value: T) => void) => Promise<void> {
  let seq = 0;
  return async <T>(request: Promise<T>, apply: (value: T) => void): Promise<void> => {
    const mine = ++seq;
    let value: T;
    try {
      value = await request;
    } catch (err) {
      if (mine === seq) throw err; // a superseded request's failure is not news either
      return;
    }
    if (mine === seq) apply(value);
  };
}
