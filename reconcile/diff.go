package reconcile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// FieldOp is how one field differs between two versions of a pod.
type FieldOp string

// Field operations.
const (
	FieldAdded   FieldOp = "added"
	FieldRemoved FieldOp = "removed"
	FieldChanged FieldOp = "changed"
)

// FieldChange is one field that differs between two versions of a pod:
// a field of the normalized spec or metadata, or an entry of a ConfigMap
// or Secret the pod uses. Secret content never appears in a FieldChange.
type FieldChange struct {
	// Path names the field, Kubernetes-style: "spec.containers[web].image",
	// "spec.containers[web].env[LOG_LEVEL].value", "metadata.labels.app",
	// `configMap[web].data["index.html"]`, "secret[db].data.password".
	// List entries are named by their name (or mount path, port) when
	// they have one, by index otherwise.
	Path string  `json:"path"`
	Op   FieldOp `json:"op"`
	// From and To are the old and new values formatted for reading; a
	// list of plain values is shown whole, as JSON. Both are empty for a
	// Secret's data.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Secret marks a change of a Secret's data: what changed is not shown.
	Secret bool `json:"secret,omitempty"`
}

// SecretChanged is what a FieldChange of a Secret's data shows instead of
// the value.
const SecretChanged = "(secret changed)"

// Multiline reports whether From or To spans several lines (a mounted
// configuration file, say), which readers show as a line diff.
func (c FieldChange) Multiline() bool {
	return strings.Contains(c.From, "\n") || strings.Contains(c.To, "\n")
}

// String formats c on one line: "path: from → to", "path: added to",
// "path: removed (was from)" or "path: (secret changed)". Multi-line
// values are summarised by their line count.
func (c FieldChange) String() string {
	if c.Secret {
		return c.Path + ": " + SecretChanged
	}
	from, to := oneLine(c.From), oneLine(c.To)
	switch c.Op {
	case FieldAdded:
		return c.Path + ": added " + to
	case FieldRemoved:
		return c.Path + ": removed (was " + from + ")"
	}
	return c.Path + ": " + from + " → " + to
}

func oneLine(s string) string {
	if n := strings.Count(s, "\n"); n > 0 {
		if !strings.HasSuffix(s, "\n") {
			n++
		}
		return fmt.Sprintf("(%d lines)", n)
	}
	return s
}

// DiffPods returns the fields that differ between from and to, in the
// order they appear in the pod: metadata, node name, spec, then the
// ConfigMaps and Secrets the pod uses. Either may be nil (a pod created or
// deleted), giving only additions or removals. DiffPods is pure.
func DiffPods(from, to *DesiredPod) []FieldChange {
	a, b := flattenPod(from), flattenPod(to)
	var out []FieldChange
	for _, k := range mergeOrder(a, b) {
		va, inA := a.values[k]
		vb, inB := b.values[k]
		switch {
		case inA && inB && va.text == vb.text:
			continue
		case inA && inB:
			out = append(out, FieldChange{Path: k, Op: FieldChanged, From: va.text, To: vb.text, Secret: va.secret || vb.secret})
		case inB:
			out = append(out, FieldChange{Path: k, Op: FieldAdded, To: vb.text, Secret: vb.secret})
		default:
			out = append(out, FieldChange{Path: k, Op: FieldRemoved, From: va.text, Secret: va.secret})
		}
	}
	for i := range out {
		if out[i].Secret {
			out[i].From, out[i].To = "", ""
		}
	}
	return out
}

type flatValue struct {
	text   string
	secret bool
}

// flatPod is a pod flattened to path → value, with the paths in order.
type flatPod struct {
	keys   []string
	values map[string]flatValue
}

func (f *flatPod) add(path, text string, secret bool) {
	if _, ok := f.values[path]; !ok {
		f.keys = append(f.keys, path)
	}
	f.values[path] = flatValue{text: text, secret: secret}
}

func flattenPod(p *DesiredPod) *flatPod {
	f := &flatPod{values: map[string]flatValue{}}
	if p == nil {
		return f
	}
	meta := map[string]any{}
	if len(p.Labels) > 0 {
		meta["labels"] = toAny(p.Labels)
	}
	if len(p.Annotations) > 0 {
		meta["annotations"] = toAny(p.Annotations)
	}
	f.walk("metadata", meta)
	if p.NodeName != "" {
		f.add("nodeName", p.NodeName, false)
	}
	f.walk("spec", toAny(p.Spec))
	for _, name := range sortedKeys(p.ConfigMaps) {
		cm := p.ConfigMaps[name]
		base := "configMap[" + name + "]"
		if cm == nil {
			continue
		}
		f.add(base, keyCount(len(cm.Data)+len(cm.BinaryData)), false)
		for _, k := range sortedKeys(cm.Data) {
			f.add(base+".data"+keySegment(k), cm.Data[k], false)
		}
		for _, k := range sortedKeys(cm.BinaryData) {
			sum := sha256.Sum256(cm.BinaryData[k])
			f.add(base+".binaryData"+keySegment(k), fmt.Sprintf("(%d bytes, sha256 %s)", len(cm.BinaryData[k]), hex.EncodeToString(sum[:6])), false)
		}
	}
	for _, name := range sortedKeys(p.Secrets) {
		sec := p.Secrets[name]
		base := "secret[" + name + "]"
		if sec == nil {
			continue
		}
		f.add(base, keyCount(len(sec.Data)), false)
		if sec.Type != "" {
			f.add(base+".type", sec.Type, false)
		}
		for _, k := range sortedKeys(sec.Data) {
			// The value is compared through its digest and never shown.
			sum := sha256.Sum256(sec.Data[k])
			f.add(base+".data"+keySegment(k), hex.EncodeToString(sum[:]), true)
		}
	}
	return f
}

func keyCount(n int) string {
	if n == 1 {
		return "1 key"
	}
	return strconv.Itoa(n) + " keys"
}

// toAny turns v into plain JSON values (maps, slices, strings, numbers,
// bools) with its JSON field names.
func toAny(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		// Plain structs of strings and numbers always marshal.
		panic(fmt.Sprintf("diff: marshal %T: %v", v, err))
	}
	var out any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&out); err != nil {
		panic(fmt.Sprintf("diff: unmarshal %T: %v", v, err))
	}
	return out
}

func (f *flatPod) walk(path string, v any) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			f.walk(path+keySegment(k), v[k])
		}
	case []any:
		if len(v) == 0 {
			return
		}
		if allScalar(v) {
			f.add(path, compactJSON(v), false)
			return
		}
		field, names := listKeys(v)
		for i, e := range v {
			elem := path + "[" + names[i] + "]"
			m, _ := e.(map[string]any)
			if field == "" || m == nil {
				f.walk(elem, e)
				continue
			}
			// The naming field is in the path already.
			n := len(f.keys)
			rest := make(map[string]any, len(m))
			for k, x := range m {
				if k != field {
					rest[k] = x
				}
			}
			f.walk(elem, rest)
			if len(f.keys) == n {
				f.add(elem, `""`, false)
			}
		}
	case nil:
	default:
		f.add(path, scalarText(v), false)
	}
}

// listKeyFields are the fields that name an entry of a list, tried in
// order; the first one that is set and unique in every entry wins.
var listKeyFields = []string{"name", "mountPath", "containerPort", "key", "path", "ip"}

// listKeys returns the field naming each entry of v and the names, or
// "" and the indexes.
func listKeys(v []any) (string, []string) {
	for _, field := range listKeyFields {
		keys := make([]string, len(v))
		seen := map[string]bool{}
		ok := true
		for i, e := range v {
			m, isMap := e.(map[string]any)
			if !isMap {
				ok = false
				break
			}
			s := scalarText(m[field])
			if m[field] == nil || s == "" || seen[s] {
				ok = false
				break
			}
			seen[s] = true
			keys[i] = s
		}
		if ok {
			return field, keys
		}
	}
	keys := make([]string, len(v))
	for i := range v {
		keys[i] = strconv.Itoa(i)
	}
	return "", keys
}

func allScalar(v []any) bool {
	for _, e := range v {
		switch e.(type) {
		case map[string]any, []any:
			return false
		}
	}
	return true
}

// compactJSON formats v on one line as JSON, leaving <, > and & as they
// are: the text is read by people, not embedded in HTML.
func compactJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func scalarText(v any) string {
	switch v := v.(type) {
	case string:
		if v == "" || strings.TrimSpace(v) != v && !strings.Contains(v, "\n") {
			return strconv.Quote(v)
		}
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// keySegment is ".key" for plain keys and `["key"]` for keys holding
// dots, slashes or other punctuation.
func keySegment(k string) string {
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return "[" + strconv.Quote(k) + "]"
		}
	}
	if k == "" {
		return `[""]`
	}
	return "." + k
}

// mergeOrder lists the paths of a and b: b's in order, with paths only in
// a placed where they stood in a.
func mergeOrder(a, b *flatPod) []string {
	posA := make(map[string]int, len(a.keys))
	for i, k := range a.keys {
		posA[k] = i
	}
	out := make([]string, 0, len(b.keys)+len(a.keys))
	next := 0 // next index of a not yet considered
	flush := func(upto int) {
		for ; next < upto && next < len(a.keys); next++ {
			if _, inB := b.values[a.keys[next]]; !inB {
				out = append(out, a.keys[next])
			}
		}
	}
	for _, k := range b.keys {
		if p, ok := posA[k]; ok {
			flush(p)
			if next <= p {
				next = p + 1
			}
		}
		out = append(out, k)
	}
	flush(len(a.keys))
	return out
}
