/**
 * Opens every client entry point on the store URL in argv, uses it, closes it as the README
 * shows, and then simply ends: the test that runs it expects the process to exit on its own.
 */
import Axios from "axios";
import { setupCache } from "../../src/axios/index.ts";
import { createKeyv } from "../../src/create-keyv.ts";
import { SECRET } from "./secrets.ts";

const url = process.argv[2] as string;
const axios = setupCache(Axios.create(), SECRET, { store: url });
await axios.storage.get("probe");
await axios.storage.keyv.disconnect();
const keyv = createKeyv({ url, secret: SECRET });
await keyv.set("probe", 1, 1_000);
await keyv.disconnect();
console.log("closed");
