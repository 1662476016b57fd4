package fleet

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"filippo.io/age"

	"berth.dev/berth/preview"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/schema"
	"berth.dev/berth/secrets"
)

// SecretReaders says which devices of the inventory can read a Secret
// encrypted (with SOPS) to some age recipients, and what waits for it on
// the others. It is read from the recipients in the encrypted file and the
// devices' public keys (Device.AgeRecipient); no private key is needed.
type SecretReaders struct {
	// Secret is "namespace/name"; Source where it is declared in the head.
	Secret string `json:"secret"`
	Source string `json:"source"`
	// Readers are the devices whose key the Secret is encrypted to, in
	// inventory order; Others is how many devices evaluate it but cannot
	// read it.
	Readers []string `json:"readers"`
	Others  int      `json:"others"`
	// Waiting are the objects held back for it, each with the number of
	// devices on which it waits.
	Waiting map[string]int `json:"waiting,omitempty"`
}

// checkRecipient checks a device's age public key.
func checkRecipient(i int, d Device) string {
	if d.AgeRecipient == "" {
		return ""
	}
	if _, err := age.ParseX25519Recipient(d.AgeRecipient); err != nil {
		return fmt.Sprintf("devices[%d] (%s): ageRecipient: %v", i, d.Name, err)
	}
	return ""
}

// deviceOptions are the loader and expansion options of the preview of
// device d: encrypted files are read the same way for every device (so
// loads are shared), and the device's public key decides which Secrets it
// reads.
func deviceOptions(d Device, sopts schema.Options, eopts preview.ExpandOptions) (schema.Options, preview.ExpandOptions) {
	k := secrets.ForRecipient(d.AgeRecipient)
	sopts.Decrypt = previewKeyring.Decrypt
	eopts.Prepare = k.Prepare
	return sopts, eopts
}

// previewKeyring reads encrypted files for every device's preview.
var previewKeyring = secrets.ForRecipient("")

// secretKeys lists the encrypted Secrets of a loaded revision and whether
// device d reads each.
func secretKeys(objs []reconcile.Object, d Device) map[string]secretSeen {
	out := map[string]secretSeen{}
	for _, o := range objs {
		rs, ok := o.Metadata.Annotations[secrets.NotForThisDevice]
		if o.Kind != "Secret" || !ok {
			continue
		}
		reads := d.AgeRecipient != "" && slices.Contains(strings.Split(rs, ","), d.AgeRecipient)
		out[o.Metadata.Namespace+"/"+o.Metadata.Name] = secretSeen{source: o.Source.String(), reads: reads}
	}
	return out
}

type secretSeen struct {
	source string
	reads  bool
}

// secretReaders sums up, over the devices, who reads each encrypted
// Secret of the head and what waits for it.
func secretReaders(inv *Inventory, results []result) []SecretReaders {
	by := map[string]*SecretReaders{}
	for i, res := range results {
		d := inv.Devices[i]
		for key, s := range res.secrets {
			sr := by[key]
			if sr == nil {
				sr = &SecretReaders{Secret: key, Source: s.source, Readers: []string{}}
				by[key] = sr
			}
			if s.reads {
				sr.Readers = append(sr.Readers, d.Name)
			} else {
				sr.Others++
			}
		}
		for _, w := range res.plan.Waiting {
			ns := namespaceOf(w.Object)
			for _, name := range w.Secrets {
				if sr := by[ns+"/"+name]; sr != nil {
					if sr.Waiting == nil {
						sr.Waiting = map[string]int{}
					}
					sr.Waiting[w.Object]++
				}
			}
		}
	}
	out := make([]SecretReaders, 0, len(by))
	for _, sr := range by {
		out = append(out, *sr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Secret < out[j].Secret })
	return out
}

// namespaceOf returns the namespace of "Kind/namespace/name".
func namespaceOf(object string) string {
	parts := strings.SplitN(object, "/", 3)
	if len(parts) < 3 {
		return ""
	}
	return parts[1]
}

// writeSecretsText prints who reads each encrypted Secret.
func writeSecretsText(w io.Writer, r *Report) {
	if len(r.Secrets) == 0 {
		return
	}
	fmt.Fprintf(w, "\nencrypted Secrets (read with each device's ageRecipient; no private key used):\n")
	for _, s := range r.Secrets {
		fmt.Fprintf(w, "  Secret %s (%s): readable on %d of %s: %s\n", s.Secret, s.Source,
			len(s.Readers), devices(len(s.Readers)+s.Others), orNone(deviceList(s.Readers)))
		for _, obj := range sortedKeys(s.Waiting) {
			fmt.Fprintf(w, "    %s waits on %s\n", obj, devices(s.Waiting[obj]))
		}
	}
}

// writeSecretsMarkdown writes a table of who reads each encrypted Secret.
func writeSecretsMarkdown(w io.Writer, r *Report) {
	if len(r.Secrets) == 0 {
		return
	}
	fmt.Fprintf(w, "**Encrypted Secrets** (who can read them, from the devices' age public keys)\n\n")
	fmt.Fprintf(w, "| Secret | readable on | not on | waits there |\n|---|---|---|---|\n")
	for _, s := range r.Secrets {
		var waits []string
		for _, obj := range sortedKeys(s.Waiting) {
			waits = append(waits, fmt.Sprintf("`%s` (%d)", obj, s.Waiting[obj]))
		}
		fmt.Fprintf(w, "| `%s` | %s | %d | %s |\n", s.Secret, orNone(deviceList(s.Readers)), s.Others, orNone(strings.Join(waits, ", ")))
	}
	fmt.Fprintln(w)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// waitingEffect adds to a group's effect how many objects wait there for
// Secrets the devices cannot read.
func waitingEffect(g *Group) string {
	switch n := len(g.Plan.Waiting); n {
	case 0:
		return ""
	case 1:
		return "; 1 object waits for a Secret not encrypted to these devices"
	default:
		return fmt.Sprintf("; %d objects wait for Secrets not encrypted to these devices", n)
	}
}
