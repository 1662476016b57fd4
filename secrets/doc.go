// Package secrets reads Secrets encrypted in Git with SOPS to age
// recipients, on the devices they are for.
//
// A device has an age identity (Keygen; Open reads it). Keyring.Decrypt is
// the loader's hook (schema.Options.Decrypt): a YAML file with SOPS
// metadata is decrypted in memory, its MAC verified, and returned with its
// values in place and its metadata blanked, so positions stay those of the
// file in Git. A file encrypted to other devices becomes, per document, the
// identity of its Secret annotated NotForThisDevice; Keyring.Prepare then
// takes such Secrets out of the revision together with the objects whose
// pods need them (reported as Waiting), and gives every other Secret keyed
// digests (SecretData.Digests) for the spec hash. ForRecipient makes the
// keyring of a preview, which knows a device by its public key only.
//
// berth reads the SOPS format itself, with filippo.io/age for the data key,
// rather than through the SOPS Go packages, which link every cloud key
// service; the tests encrypt with the sops command and compare.
//
// Invariants kept here:
//
//   - Plaintext never at rest: decrypted values live only in the returned
//     bytes and the objects made from them; no error, Waiting or annotation
//     holds a value (errors name paths, Waiting names objects and Secrets).
//   - Tampering is refused: a value, key or unencrypted field changed after
//     encryption fails the MAC or the value's authentication, as an *Error
//     with the position.
//   - Keyed digests: a value enters a spec hash only as an HMAC-SHA256 with
//     a device-local key (0600 under the state directory), so equal values
//     hash equally on a device however they were encrypted, and a hash
//     tells nothing about a value elsewhere.
//   - Files that are not SOPS are returned as they are.
package secrets
