package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"berth.dev/berth/reconcile"
)

// Limits on an inventory file.
const (
	// MaxInventorySize is the largest inventory file read: 16 MiB.
	MaxInventorySize = 16 << 20
	// MaxDevices is the most devices an inventory may list.
	MaxDevices = 100000
)

// Device is one device of an inventory: what the agent on it sees of
// itself.
type Device struct {
	// Name is the device's node name (the agent's --node-name).
	Name string `yaml:"name" json:"name"`
	// Labels are the device's node labels (the agent's --node-label).
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// AgeRecipient is the device's age public key (berth keygen prints
	// it): the preview counts a SOPS-encrypted Secret as readable on the
	// device when the file is encrypted to this key.
	AgeRecipient string `yaml:"ageRecipient,omitempty" json:"ageRecipient,omitempty"`
}

// Node is the device as objects see it.
func (d Device) Node() reconcile.Node {
	return reconcile.Node{Name: d.Name, Labels: d.Labels}
}

// Inventory lists the devices of a fleet.
type Inventory struct {
	Devices []Device `yaml:"devices" json:"devices"`
}

// ReadInventory reads and checks the inventory file at path.
func ReadInventory(path string) (*Inventory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	defer f.Close()
	inv, err := ParseInventory(f)
	if err != nil {
		return nil, fmt.Errorf("inventory %s: %w", path, err)
	}
	return inv, nil
}

// ParseInventory decodes an inventory: YAML (or JSON) with a devices list
// of {name, labels}. Unknown fields, duplicate or invalid names and empty
// label keys are errors, so a typo cannot silently change which devices
// match.
func ParseInventory(r io.Reader) (*Inventory, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxInventorySize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxInventorySize {
		return nil, fmt.Errorf("larger than %d MiB", MaxInventorySize>>20)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var inv Inventory
	if err := dec.Decode(&inv); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty: want a devices list")
		}
		return nil, err
	}
	if err := inv.Validate(); err != nil {
		return nil, err
	}
	return &inv, nil
}

// Validate checks the inventory: at least one device, at most
// MaxDevices, names that are unique DNS-1123 subdomains, label keys that
// are not empty.
func (inv *Inventory) Validate() error {
	if len(inv.Devices) == 0 {
		return errors.New("no devices")
	}
	if len(inv.Devices) > MaxDevices {
		return fmt.Errorf("%d devices, more than %d", len(inv.Devices), MaxDevices)
	}
	seen := make(map[string]int, len(inv.Devices))
	var problems []string
	for i, d := range inv.Devices {
		switch {
		case d.Name == "":
			problems = append(problems, fmt.Sprintf("devices[%d]: name is missing", i))
		case !isSubdomain(d.Name):
			problems = append(problems, fmt.Sprintf("devices[%d]: name %q is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')", i, d.Name))
		}
		if j, dup := seen[d.Name]; dup && d.Name != "" {
			problems = append(problems, fmt.Sprintf("devices[%d]: name %q is also devices[%d]", i, d.Name, j))
		}
		seen[d.Name] = i
		keys := make([]string, 0, len(d.Labels))
		for k := range d.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if strings.TrimSpace(k) == "" {
				problems = append(problems, fmt.Sprintf("devices[%d] (%s): empty label key", i, d.Name))
			}
		}
		if p := checkRecipient(i, d); p != "" {
			problems = append(problems, p)
		}
		if len(problems) >= 20 {
			break
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func isSubdomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
