// Package fleet previews a change on every device of an inventory: it
// evaluates the base and head revisions for each device as the agent on
// that device would (node name and labels), and groups the devices by
// the effect the change has on them, so one pull-request comment can say
// "this change replaces 3 pods on 120 of 500 devices".
//
// Invariants kept here:
//   - Each device is evaluated with the same loader, expansion and
//     planner as apply (through package preview); nothing is contacted.
//   - The expensive step, loading and validating a revision, runs once
//     per distinct input it depends on, not once per device; expansion
//     and planning, which are cheap, run per device.
//   - Secret values never appear in a report.
package fleet
