/** Fixed test secrets, each at least 32 bytes. */
export const SECRET = "test-secret-0123456789abcdefghijklmnop";
export const OLD_SECRET = "old-secret-0123456789abcdefghijklmnopq";
export const OTHER_SECRET = "other-secret-0123456789abcdefghijklmno";
