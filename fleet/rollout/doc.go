// Package rollout reads a fleet's rollout policy from a revision and
// decides, for one device, whether the revision may be applied now.
//
// The policy is the file berth-rollout.yaml (or .yml, .json, or .cue for
// the same structure in CUE, evaluated on its own) at the root of the
// definitions. It declares ordered waves; a device belongs to the
// first wave whose selector matches its labels and whose percent covers
// its bucket, a stable hash of its node name, so the same devices are
// always first. A revision without the file rolls out at once, as before.
//
// Invariants kept here:
//   - Everything is a pure function of its inputs: the policy, the
//     device, the revision's commit and time, the fleet's reported status
//     and a clock passed in. Nothing is read or sent.
//   - Every problem of a policy names its file:line:col, the field and
//     the rule, like a manifest's.
//   - A device computes the wave of every other device from that device's
//     name and labels with the policy of the revision being rolled out,
//     so all devices agree on the waves of a revision whatever they ran
//     before.
package rollout
