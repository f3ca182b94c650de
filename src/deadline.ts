/**
 * `promise`, or the error `late()` makes once `ms` have passed; the timer never holds the
 * process open. One promise settled by whichever comes first, rather than `Promise.race` over a
 * second one: it bounds every store call, and costs half as much.
 */
export function withDeadline<T>(promise: Promise<T>, ms: number, late: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(late()), ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
