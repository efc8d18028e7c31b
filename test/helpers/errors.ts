// The message of the error a call throws, when it is of the kind a test expects; any other error
// is thrown on, and a call that throws nothing gives `otherwise`.
export function thrownMessage(f: () => unknown, kind: new (...args: never[]) => Error, otherwise: string): string {
  try {
    f();
  } catch (err) {
    if (err instanceof kind) return err.message;
    throw err;
  }
  return otherwise;
}
