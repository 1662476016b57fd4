package secrets

import (
	"fmt"
	"slices"
	"strings"

	"berth.dev/berth/reconcile"
)

// Waiting is an object of the revision whose pods this device does not
// start, because they need Secrets the device cannot decrypt.
type Waiting struct {
	// Object is "Kind/namespace/name".
	Object string `json:"object"`
	// Source is where the object is declared.
	Source reconcile.Position `json:"source"`
	// Secrets are the names of the Secrets it waits for, in its namespace.
	Secrets []string `json:"secrets"`
}

// String says which object waits and why, without any value.
func (w Waiting) String() string {
	return fmt.Sprintf("%s waits for %s: not encrypted to this device's age identity", w.Object, secretList(w.Secrets))
}

func secretList(names []string) string {
	if len(names) == 1 {
		return "Secret " + names[0]
	}
	return "Secrets " + strings.Join(names, ", ")
}

// Prepare readies a loaded revision for expansion on this device. Secrets
// annotated NotForThisDevice are taken out; so are the objects whose pods
// need one of them (a reference that is not optional): those are returned
// as waiting, and nothing else is affected. Every remaining Secret gets
// keyed digests of its values (SecretData.Digests), so spec hashes change
// exactly when a value this device reads changes, and never carry an
// unkeyed digest of it. objs is not modified (a cached load shares it).
// A nil Keyring, or one for previews (ForRecipient), holds back the same
// objects and sets no digests. The error
// says why the digest key cannot be had.
func (k *Keyring) Prepare(objs []reconcile.Object) ([]reconcile.Object, []Waiting, error) {
	unreadable := map[string]bool{}
	for i := range objs {
		o := &objs[i]
		if o.Kind == "Secret" {
			if rs, ok := o.Metadata.Annotations[NotForThisDevice]; ok && !k.reads(rs) {
				unreadable[o.Metadata.Namespace+"/"+o.Metadata.Name] = true
			}
		}
	}
	out := make([]reconcile.Object, 0, len(objs))
	var waiting []Waiting
	for _, o := range objs {
		ns := o.Metadata.Namespace
		if o.Kind == "Secret" && unreadable[ns+"/"+o.Metadata.Name] {
			continue
		}
		if spec := reconcile.PodSpecOf(&o); spec != nil && len(unreadable) > 0 {
			var missing []string
			for name, optional := range reconcile.SecretRefs(spec) {
				if !optional && unreadable[ns+"/"+name] {
					missing = append(missing, name)
				}
			}
			if len(missing) > 0 {
				slices.Sort(missing)
				waiting = append(waiting, Waiting{Object: o.Key(), Source: o.Source, Secrets: missing})
				continue
			}
		}
		if o.Secret != nil && k != nil && k.digestKey != nil {
			s := *o.Secret
			s.Digests = make(map[string][]byte, len(s.Data))
			for key, v := range s.Data {
				d, err := k.Digest(v)
				if err != nil {
					return nil, nil, err
				}
				s.Digests[key] = d
			}
			o.Secret = &s
		}
		out = append(out, o)
	}
	return out, waiting, nil
}

// reads reports whether a preview keyring's device is one of recipients
// (comma-separated).
func (k *Keyring) reads(recipients string) bool {
	return k != nil && k.recipient != "" && slices.Contains(strings.Split(recipients, ","), k.recipient)
}

// ForNode drops from waiting the objects whose pods would not run on the
// node anyway (notForNode, from reconcile.NotForNodes): those wait for
// nothing here.
func ForNode(waiting []Waiting, notForNode []reconcile.NotForNode) []Waiting {
	if len(waiting) == 0 || len(notForNode) == 0 {
		return waiting
	}
	skip := map[string]bool{}
	for _, n := range notForNode {
		skip[n.Object] = true
	}
	var out []Waiting
	for _, w := range waiting {
		if !skip[w.Object] {
			out = append(out, w)
		}
	}
	return out
}
