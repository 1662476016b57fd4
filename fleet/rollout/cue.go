package rollout

import (
	"fmt"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"
	"go.yaml.in/yaml/v3"

	"berth.dev/berth/reconcile"
)

// parseCUE evaluates the policy file written in CUE and returns its
// value as a YAML node with the CUE positions, for the parser of the
// YAML policy to validate: the same fields, rules and messages, pointing
// into the CUE file. The file stands alone (the loader of manifests skips
// it, so it is no part of the root's CUE package); it may import CUE's
// standard library, and its hidden fields and definitions are helpers.
func parseCUE(file string, data []byte) (*yaml.Node, []Problem) {
	v := cuecontext.New().CompileBytes(data, cue.Filename(file))
	if err := v.Err(); err != nil {
		return nil, cueProblems(file, err)
	}
	if err := v.Validate(cue.Concrete(true)); err != nil {
		return nil, cueProblems(file, err)
	}
	return cueNode(v, v.Pos()), nil
}

// cueProblems turns CUE's errors into problems at their positions in the
// file.
func cueProblems(file string, err error) []Problem {
	var out []Problem
	for _, e := range cueerrors.Errors(err) {
		pr := Problem{Pos: reconcile.Position{File: file, Line: 1, Column: 1}, Path: cuePath(e.Path())}
		at := e.Position()
		if ins := e.InputPositions(); !at.IsValid() && len(ins) > 0 {
			at = ins[0]
		}
		if pos := cuePos(at); pos.Line > 0 {
			pr.Pos.Line, pr.Pos.Column = pos.Line, pos.Column
		}
		format, args := e.Msg()
		pr.Message = fmt.Sprintf(format, args...)
		out = append(out, pr)
	}
	return out
}

// cuePath writes CUE's path as the parser does: waves[0].soak.
func cuePath(sel []string) string {
	var b strings.Builder
	for _, s := range sel {
		if _, err := strconv.Atoi(s); err == nil {
			b.WriteString("[" + s + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

func cuePos(p token.Pos) token.Position {
	if !p.IsValid() {
		return token.Position{}
	}
	return p.Position()
}

// cueNode is v as a YAML node. at is where v is written: a field's value,
// or the list element itself.
func cueNode(v cue.Value, at token.Pos) *yaml.Node {
	pos := cuePos(at)
	n := &yaml.Node{Line: pos.Line, Column: pos.Column}
	switch v.Kind() {
	case cue.StructKind:
		n.Kind, n.Tag = yaml.MappingNode, "!!map"
		it, _ := v.Fields()
		for it.Next() {
			key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: it.Selector().Unquoted()}
			val := it.Value()
			valAt := val.Pos()
			if f, ok := val.Source().(*ast.Field); ok {
				lp := cuePos(f.Label.Pos())
				key.Line, key.Column = lp.Line, lp.Column
				valAt = f.Value.Pos()
			} else {
				kp := cuePos(valAt)
				key.Line, key.Column = kp.Line, kp.Column
			}
			n.Content = append(n.Content, key, cueNode(val, valAt))
		}
	case cue.ListKind:
		n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
		it, _ := v.List()
		for it.Next() {
			n.Content = append(n.Content, cueNode(it.Value(), it.Value().Pos()))
		}
	default:
		n.Kind = yaml.ScalarNode
		switch v.Kind() {
		case cue.StringKind:
			n.Tag = "!!str"
			n.Value, _ = v.String()
		case cue.IntKind:
			n.Tag = "!!int"
			i, _ := v.Int64()
			n.Value = strconv.FormatInt(i, 10)
		case cue.FloatKind, cue.NumberKind:
			n.Tag = "!!float"
			f, _ := v.Float64()
			n.Value = strconv.FormatFloat(f, 'f', -1, 64)
		case cue.BoolKind:
			n.Tag = "!!bool"
			b, _ := v.Bool()
			n.Value = strconv.FormatBool(b)
		case cue.NullKind:
			n.Tag, n.Value = "!!null", "null"
		default:
			n.Tag, n.Value = "!!binary", "bytes"
		}
	}
	return n
}
