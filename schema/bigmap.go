package schema

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"unicode/utf8"

	"cuelang.org/go/cue/ast"
	cuelit "cuelang.org/go/cue/literal"
	"cuelang.org/go/cue/token"

	"berth.dev/berth/reconcile"
)

// inlineKeys is the most keys a ConfigMap's or Secret's data map of a YAML
// or JSON document may have for CUE to validate it. CUE's evaluator costs
// O(n²) in the fields of a struct (one valid 1 MiB ConfigMap of 88,000 keys
// took a minute and 500 MiB), so a larger map of plain strings is taken
// out of the document and checked here, in linear time, by the same rules.
const inlineKeys = 256

// configKey and dotKey are #ConfigKey of the schema.
var (
	configKey = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
	dotKey    = regexp.MustCompile(`^(\.|\.\..*)$`)
)

// bigMap is a data map taken out of a document.
type bigMap struct {
	// field is data, binaryData or stringData.
	field  string
	keys   []string
	values []string
	// pos are the positions of the keys.
	pos []token.Pos
}

// takeBigMaps takes the data maps of more than inlineKeys keys out of a
// ConfigMap or Secret document, leaving empty maps, when every value is a
// string: a map with another value is left for CUE to explain.
func takeBigMaps(expr ast.Expr) []bigMap {
	st, ok := expr.(*ast.StructLit)
	if !ok || !isKind(st, "ConfigMap", "Secret") {
		return nil
	}
	var out []bigMap
	for _, e := range st.Elts {
		f, ok := e.(*ast.Field)
		if !ok {
			continue
		}
		name, _, _ := ast.LabelName(f.Label)
		m, ok := f.Value.(*ast.StructLit)
		if (name != "data" && name != "binaryData" && name != "stringData") || !ok || len(m.Elts) <= inlineKeys {
			continue
		}
		bm := bigMap{field: name}
		for _, e := range m.Elts {
			kf, ok := e.(*ast.Field)
			if !ok {
				bm.keys = nil
				break
			}
			k, _, err := ast.LabelName(kf.Label)
			lit, isLit := kf.Value.(*ast.BasicLit)
			if err != nil || !isLit || lit.Kind != token.STRING {
				bm.keys = nil
				break
			}
			v, err := cuelit.Unquote(lit.Value)
			if err != nil {
				bm.keys = nil
				break
			}
			bm.keys, bm.values, bm.pos = append(bm.keys, k), append(bm.values, v), append(bm.pos, kf.Label.Pos())
		}
		if bm.keys == nil {
			continue
		}
		f.Value = ast.NewStruct()
		out = append(out, bm)
	}
	return out
}

// isKind reports whether the document st declares one of kinds.
func isKind(st *ast.StructLit, kinds ...string) bool {
	for _, e := range st.Elts {
		f, ok := e.(*ast.Field)
		if !ok {
			continue
		}
		if name, _, _ := ast.LabelName(f.Label); name != "kind" {
			continue
		}
		lit, ok := f.Value.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return false
		}
		k, _ := cuelit.Unquote(lit.Value)
		for _, want := range kinds {
			if k == want {
				return true
			}
		}
	}
	return false
}

// addBigMaps checks the maps taken out of a ConfigMap or Secret by the
// schema's rules and adds them to the decoded object.
func addBigMaps(x *validator, obj *reconcile.Object, maps []bigMap) {
	for _, m := range maps {
		for i, k := range m.keys {
			path := sel(m.field, k)
			switch {
			case !configKey.MatchString(k):
				x.report(m.pos[i], path, "invalid key: "+patternRules[`=~^[-._a-zA-Z0-9]+$`])
				continue
			case dotKey.MatchString(k):
				x.report(m.pos[i], path, "invalid key: "+patternRules[`!~^(\.|\.\..*)$`])
				continue
			case utf8.RuneCountInString(k) > 253:
				x.report(m.pos[i], path, "invalid key: must be at most 253 characters long")
				continue
			}
			v := m.values[i]
			switch {
			case obj.ConfigMap != nil && m.field == "data":
				if obj.ConfigMap.Data == nil {
					obj.ConfigMap.Data = make(map[string]string, len(m.keys))
				}
				obj.ConfigMap.Data[k] = v
			case obj.ConfigMap != nil:
				b, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					x.report(m.pos[i], path, "must be base64")
					continue
				}
				if obj.ConfigMap.BinaryData == nil {
					obj.ConfigMap.BinaryData = make(map[string][]byte, len(m.keys))
				}
				obj.ConfigMap.BinaryData[k] = b
			case obj.Secret != nil:
				if obj.Secret.Data == nil {
					obj.Secret.Data = make(map[string][]byte, len(m.keys))
				}
				if m.field == "stringData" {
					obj.Secret.Data[k] = []byte(v)
					continue
				}
				b, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					x.report(m.pos[i], path, "must be base64 (use stringData for plain text)")
					continue
				}
				if _, set := obj.Secret.Data[k]; !set {
					obj.Secret.Data[k] = b // stringData wins
				}
			}
		}
	}
	if cm := obj.ConfigMap; cm != nil {
		for k := range cm.BinaryData {
			if _, dup := cm.Data[k]; dup {
				x.reportAt(sel("binaryData", k), fmt.Sprintf("key %q is also in data", k))
			}
		}
	}
}
