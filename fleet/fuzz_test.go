package fleet_test

import (
	"bytes"
	"testing"

	"berth.dev/berth/fleet"
)

// FuzzParseInventory feeds arbitrary bytes to the inventory parser: it
// must return an inventory that validates, or an error, and never panic.
func FuzzParseInventory(f *testing.F) {
	f.Add([]byte("devices:\n- {name: a, labels: {x: y}}\n"))
	f.Add([]byte("devices: [{name: a}, {name: a}]"))
	f.Add([]byte(`{"devices": [{"name": "b.c", "labels": {"": "1"}}]}`))
	f.Add([]byte("devices:\n- &a {name: x}\n- *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := fleet.ParseInventory(bytes.NewReader(data))
		if err != nil {
			return
		}
		if err := inv.Validate(); err != nil {
			t.Fatalf("parsed inventory does not validate: %v", err)
		}
		if len(inv.Devices) == 0 {
			t.Fatalf("parsed inventory has no devices")
		}
	})
}
