package schema

import (
	"errors"

	"berth.dev/berth/reconcile"
)

// decrypt gives a YAML or JSON file to Options.Decrypt and returns what to
// load instead; a refusal is a diagnostic on the file, at the position the
// error names, if any.
func (l *loader) decrypt(p string, data []byte) ([]byte, bool) {
	out, err := l.opts.Decrypt(fileName(p), data)
	if err == nil {
		return out, true
	}
	pos := reconcile.Position{File: fileName(p)}
	var positioned interface{ Position() (int, int) }
	if errors.As(err, &positioned) {
		if line, col := positioned.Position(); line > 0 {
			pos.Line, pos.Column = line, col
			err = errors.New(stripPosition(err.Error()))
		}
	}
	l.diags = append(l.diags, Diagnostic{Pos: pos, Message: err.Error()})
	return nil, false
}

// stripPosition drops a leading "line:col: " the position already says.
func stripPosition(msg string) string {
	for range 2 {
		i := 0
		for i < len(msg) && msg[i] >= '0' && msg[i] <= '9' {
			i++
		}
		if i == 0 || i >= len(msg) || msg[i] != ':' {
			return msg
		}
		msg = msg[i+1:]
	}
	if len(msg) > 0 && msg[0] == ' ' {
		msg = msg[1:]
	}
	return msg
}
