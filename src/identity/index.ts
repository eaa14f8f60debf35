// The surface of src/identity: what other folders may import from it.
export { type RunCertificate, createRunCertificate, spkiOfDer, spkiOfPem } from "./certificate.ts";
export { type NodeKey, generateNodeKey, loadOrCreateNodeKey, nodeIdOf, nodeKeyFromPrivate } from "./node-key.ts";
export { ephemeralKeyPair, open, seal } from "./seal.ts";
export { montgomeryToEdwards, xeddsaKeyPair, xeddsaSign, xeddsaVerify, XEDDSA_SIGNATURE_BYTES } from "./xeddsa.ts";
export { disableCryptoMemo, enableCryptoMemo, memo, memoKey } from "./crypto-memo.ts";
