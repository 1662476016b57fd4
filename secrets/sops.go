package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"filippo.io/age"
	"filippo.io/age/armor"
	yaml "go.yaml.in/yaml/v3"
)

// Error is a problem with an encrypted file: it cannot be read as SOPS, or
// it was changed after it was encrypted. Line and Column, when not zero,
// are where in the file. The message never holds a decrypted value.
type Error struct {
	Line, Column int
	Message      string
}

// Error formats e as "line:col: message", or the message alone.
func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Message)
	}
	return e.Message
}

func errorAt(n *yaml.Node, format string, args ...any) *Error {
	e := &Error{Message: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	return e
}

// metadata is the part of the "sops" key berth reads. Key services other
// than age (KMS, PGP, Vault) are listed by SOPS too; berth does not use
// them.
type metadata struct {
	Age []struct {
		Recipient string `yaml:"recipient"`
		Enc       string `yaml:"enc"`
	} `yaml:"age"`
	KeyGroups               []yaml.Node `yaml:"key_groups"`
	LastModified            string      `yaml:"lastmodified"`
	MAC                     string      `yaml:"mac"`
	UnencryptedSuffix       string      `yaml:"unencrypted_suffix"`
	EncryptedSuffix         string      `yaml:"encrypted_suffix"`
	UnencryptedRegex        string      `yaml:"unencrypted_regex"`
	EncryptedRegex          string      `yaml:"encrypted_regex"`
	UnencryptedCommentRegex string      `yaml:"unencrypted_comment_regex"`
	EncryptedCommentRegex   string      `yaml:"encrypted_comment_regex"`
	MACOnlyEncrypted        bool        `yaml:"mac_only_encrypted"`
}

// file is a parsed SOPS-encrypted YAML file.
type file struct {
	data []byte
	docs []*yaml.Node
	meta metadata
	// metaKey is the "sops" key of the first document, macNode its "mac".
	metaKey, macNode *yaml.Node
	// unencrypted and encrypted are the compiled regexes of the metadata.
	unencrypted, encrypted *regexp.Regexp
}

// sopsKey is the top-level key SOPS keeps its metadata under.
const sopsKey = "sops"

// Looks reports, cheaply, whether data may be a SOPS-encrypted file: it
// holds a top-level "sops:" key and an encrypted value. Files that do not
// are loaded as they are.
func Looks(data []byte) bool {
	return (bytes.HasPrefix(data, []byte("sops:")) || bytes.Contains(data, []byte("\nsops:"))) &&
		bytes.Contains(data, []byte("ENC[AES256_GCM,"))
}

// parse reads data as SOPS-encrypted YAML. It returns nil, nil when data is
// not SOPS (no document has a "sops" mapping with a "mac"), so that the
// loader reports it as it would any file.
func parse(data []byte) (*file, error) {
	if !Looks(data) {
		return nil, nil
	}
	f := &file{data: data}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err == io.EOF {
			break
		} else if err != nil {
			return nil, nil // not valid YAML: the loader says why
		}
		f.docs = append(f.docs, &n)
	}
	for _, d := range f.docs {
		if k, v := topKey(d, sopsKey); k != nil && v.Kind == yaml.MappingNode {
			if _, mac := lookup(v, "mac"); mac != nil {
				f.metaKey, f.macNode = k, mac
				if err := v.Decode(&f.meta); err != nil {
					return nil, errorAt(k, "invalid SOPS metadata: %v", err)
				}
				break
			}
		}
	}
	if f.metaKey == nil {
		return nil, nil
	}
	switch {
	case len(f.meta.KeyGroups) > 0:
		return nil, errorAt(f.metaKey, "SOPS key groups (Shamir secret sharing) are not supported: encrypt to age recipients without --shamir-secret-sharing-threshold")
	case f.meta.UnencryptedCommentRegex != "" || f.meta.EncryptedCommentRegex != "":
		return nil, errorAt(f.metaKey, "SOPS comment regexes (--encrypted-comment-regex, --unencrypted-comment-regex) are not supported")
	}
	var err error
	if f.unencrypted, err = compile(f.meta.UnencryptedRegex); err == nil {
		f.encrypted, err = compile(f.meta.EncryptedRegex)
	}
	if err != nil {
		return nil, errorAt(f.metaKey, "invalid SOPS metadata: %v", err)
	}
	for _, d := range f.docs {
		if len(d.Content) == 1 && d.Content[0].Kind == yaml.MappingNode && d.Content[0].Style&yaml.FlowStyle != 0 {
			return nil, errorAt(d.Content[0], "SOPS-encrypted documents in flow style are not supported")
		}
	}
	return f, nil
}

func compile(expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	return regexp.Compile(expr)
}

// topKey returns the key and value nodes of key at the top of document d.
func topKey(d *yaml.Node, key string) (k, v *yaml.Node) {
	if d.Kind != yaml.DocumentNode || len(d.Content) != 1 {
		return nil, nil
	}
	return lookup(d.Content[0], key)
}

// lookup returns the key and value nodes of key in mapping m.
func lookup(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// Recipients returns the age recipients (public keys) the file's data key
// is encrypted to.
func (f *file) recipients() []string {
	var rs []string
	for _, a := range f.meta.Age {
		rs = append(rs, strings.TrimSpace(a.Recipient))
	}
	return rs
}

// errNoIdentity is returned by dataKey when no identity opens the file.
var errNoIdentity = errors.New("no identity of this device opens the file")

// dataKey returns the file's data key, opened with one of ids.
func (f *file) dataKey(ids []age.Identity) ([]byte, error) {
	if len(ids) == 0 {
		return nil, errNoIdentity
	}
	for _, a := range f.meta.Age {
		r, err := age.Decrypt(armor.NewReader(strings.NewReader(a.Enc)), ids...)
		if err != nil {
			var nomatch *age.NoIdentityMatchError
			if errors.As(err, &nomatch) {
				continue
			}
			return nil, errorAt(f.metaKey, "cannot open the data key for age recipient %s: %v", a.Recipient, err)
		}
		key, err := io.ReadAll(io.LimitReader(r, 64))
		if err != nil || len(key) != 32 {
			return nil, errorAt(f.metaKey, "cannot open the data key for age recipient %s: the file was changed after it was encrypted", a.Recipient)
		}
		return key, nil
	}
	return nil, errNoIdentity
}

// encValue matches a value SOPS encrypted.
var encValue = regexp.MustCompile(`^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]$`)

// open decrypts one SOPS value with key and the additional data ad (the
// value's path, or the last-modified time for the MAC).
func open(value string, key []byte, ad string) (plain []byte, typ string, err error) {
	m := encValue.FindStringSubmatch(value)
	if m == nil {
		return nil, "", errors.New("not an encrypted value")
	}
	var parts [3][]byte
	for i := range parts {
		if parts[i], err = base64.StdEncoding.DecodeString(m[i+1]); err != nil {
			return nil, "", errors.New("malformed encrypted value")
		}
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, "", err
	}
	if len(parts[1]) == 0 || len(parts[2]) != 16 {
		return nil, "", errors.New("malformed encrypted value")
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(parts[1]))
	if err != nil {
		return nil, "", err
	}
	plain, err = gcm.Open(nil, parts[1], append(parts[0], parts[2]...), []byte(ad))
	if err != nil {
		return nil, "", errors.New("authentication failed")
	}
	return plain, m[4], nil
}

// splice replaces a scalar of the file, byte range [start, end), by text.
type splice struct {
	start, end int
	text       string
}

// decryption is the state of one walk over a file's values.
type decryption struct {
	f       *file
	key     []byte
	mac     hash.Hash
	splices []splice
	lines   []int // byte offset of the start of each line
}

// macOnlyEncryptedInit starts the MAC of a file encrypted with
// --mac-only-encrypted, as SOPS does, so that the two kinds of MAC differ.
var macOnlyEncryptedInit = []byte{0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0xb, 0xb, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69}

// decrypt decrypts every value of f with key, checks the file's MAC and
// returns the plaintext file: each encrypted value replaced in place by its
// value (so line numbers stay those of the file in Git) and the SOPS
// metadata blanked out.
func (f *file) decrypt(key []byte) ([]byte, error) {
	d := &decryption{f: f, key: key, mac: sha512.New(), lines: lineStarts(f.data)}
	if f.meta.MACOnlyEncrypted {
		d.mac.Write(macOnlyEncryptedInit)
	}
	for _, doc := range f.docs {
		if len(doc.Content) == 0 {
			continue
		}
		if err := d.walk(doc.Content[0], nil); err != nil {
			return nil, err
		}
	}
	lm, err := time.Parse(time.RFC3339, f.meta.LastModified)
	if err != nil {
		return nil, errorAt(f.metaKey, "invalid SOPS metadata: lastmodified: %v", err)
	}
	want, _, err := open(f.meta.MAC, key, lm.Format(time.RFC3339))
	if err != nil {
		return nil, errorAt(f.macNode, "SOPS MAC does not verify (%v): the file was changed after it was encrypted", err)
	}
	if got := fmt.Sprintf("%X", d.mac.Sum(nil)); got != string(want) {
		return nil, errorAt(f.macNode, "SOPS MAC does not match the values: the file was changed after it was encrypted")
	}
	return blankMetadata(d.apply(), f.docs), nil
}

// walk visits the values of n, at path, in the order SOPS does.
func (d *decryption) walk(n *yaml.Node, path []string) error {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			var key any
			if err := k.Decode(&key); err != nil {
				return errorAt(k, "invalid key: %v", err)
			}
			s, ok := key.(string)
			if !ok {
				return errorAt(k, "SOPS-encrypted files may only have string keys")
			}
			if len(path) == 0 && s == sopsKey {
				continue
			}
			if err := d.walk(v, append(slices.Clip(path), s)); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if err := d.walk(c, path); err != nil {
				return err
			}
		}
	case yaml.AliasNode:
		return errorAt(n, "aliases are not supported in SOPS-encrypted files")
	case yaml.ScalarNode:
		return d.leaf(n, path)
	}
	return nil
}

// leaf decrypts (or, if it is not encrypted, only hashes) one value.
func (d *decryption) leaf(n *yaml.Node, path []string) error {
	var v any
	if err := n.Decode(&v); err != nil {
		return errorAt(n, "invalid value: %v", err)
	}
	if v == nil {
		return nil
	}
	if !d.f.shouldBeEncrypted(path) {
		if !d.f.meta.MACOnlyEncrypted {
			b, err := toBytes(v)
			if err != nil {
				return errorAt(n, "%s: %v", strings.Join(path, "."), err)
			}
			d.mac.Write(b)
		}
		return nil
	}
	s, ok := v.(string)
	if !ok {
		return errorAt(n, "%s: value is not encrypted: the file was changed after it was encrypted", strings.Join(path, "."))
	}
	if s == "" {
		return nil // SOPS leaves empty strings as they are
	}
	plain, typ, err := open(s, d.key, strings.Join(path, ":")+":")
	if err != nil {
		return errorAt(n, "%s: cannot decrypt value (%v): the file was changed after it was encrypted", strings.Join(path, "."), err)
	}
	text, macBytes, err := render(plain, typ)
	if err != nil {
		return errorAt(n, "%s: %v", strings.Join(path, "."), err)
	}
	if macBytes != nil {
		d.mac.Write(macBytes)
	}
	start := d.offset(n.Line, n.Column)
	end := start + len(n.Value)
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		end += 2
	}
	if start < 0 || end > len(d.f.data) || !bytes.Contains(d.f.data[start:end], []byte(n.Value)) {
		return errorAt(n, "%s: cannot place the decrypted value in the file", strings.Join(path, "."))
	}
	d.splices = append(d.splices, splice{start, end, text})
	return nil
}

// render formats a decrypted value of SOPS type typ as a YAML scalar on one
// line, and returns the bytes SOPS hashes into the MAC for it (nil for a
// comment, which the MAC does not cover).
func render(plain []byte, typ string) (text string, mac []byte, err error) {
	switch typ {
	case "str", "bytes":
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(string(plain))
		return strings.TrimSuffix(b.String(), "\n"), plain, nil
	case "int":
		n, err := strconv.Atoi(string(plain))
		if err != nil {
			return "", nil, errors.New("encrypted int is not a number")
		}
		return strconv.Itoa(n), []byte(strconv.Itoa(n)), nil
	case "float":
		x, err := strconv.ParseFloat(string(plain), 64)
		if err != nil {
			return "", nil, errors.New("encrypted float is not a number")
		}
		t := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(t, ".eEn") {
			t += ".0"
		}
		return t, []byte(strconv.FormatFloat(x, 'f', -1, 64)), nil
	case "bool":
		b, err := strconv.ParseBool(string(plain))
		if err != nil {
			return "", nil, errors.New("encrypted bool is not a boolean")
		}
		m := []byte("False")
		if b {
			m = []byte("True")
		}
		return strconv.FormatBool(b), m, nil
	case "time":
		var t time.Time
		if err := t.UnmarshalText(plain); err != nil {
			return "", nil, errors.New("encrypted time is not a time")
		}
		m, _ := t.MarshalText()
		return string(m), m, nil
	case "comment":
		return "null", nil, nil
	}
	return "", nil, fmt.Errorf("unknown SOPS value type %q", typ)
}

// toBytes is what SOPS hashes into the MAC for a value it did not encrypt.
func toBytes(v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return []byte(v), nil
	case int:
		return []byte(strconv.Itoa(v)), nil
	case float64:
		return []byte(strconv.FormatFloat(v, 'f', -1, 64)), nil
	case bool:
		if v {
			return []byte("True"), nil
		}
		return []byte("False"), nil
	case time.Time:
		return v.MarshalText()
	}
	return nil, fmt.Errorf("SOPS cannot hash a value of type %T", v)
}

// shouldBeEncrypted is SOPS's rule for which values of a file it encrypted.
func (f *file) shouldBeEncrypted(path []string) bool {
	m := f.meta
	encrypted := true
	if m.UnencryptedSuffix != "" && slices.ContainsFunc(path, func(p string) bool { return strings.HasSuffix(p, m.UnencryptedSuffix) }) {
		encrypted = false
	}
	if m.EncryptedSuffix != "" {
		encrypted = slices.ContainsFunc(path, func(p string) bool { return strings.HasSuffix(p, m.EncryptedSuffix) })
	}
	if f.unencrypted != nil && slices.ContainsFunc(path, f.unencrypted.MatchString) {
		encrypted = false
	}
	if f.encrypted != nil {
		encrypted = slices.ContainsFunc(path, f.encrypted.MatchString)
	}
	return encrypted
}

func lineStarts(data []byte) []int {
	starts := []int{0}
	for i, c := range data {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// offset returns the byte offset of line and column (1-based; the column
// counts characters).
func (d *decryption) offset(line, col int) int {
	if line < 1 || line > len(d.lines) {
		return -1
	}
	start := d.lines[line-1]
	off := start
	for c := 1; c < col && off < len(d.f.data); c++ {
		_, size := utf8.DecodeRune(d.f.data[off:])
		off += size
	}
	return off
}

// blankMetadata empties the lines of each document's top-level "sops" key
// and its value, so the plaintext holds only the user's objects and keeps
// their line numbers.
func blankMetadata(out []byte, docs []*yaml.Node) []byte {
	lines := bytes.SplitAfter(out, []byte("\n"))
	for _, doc := range docs {
		k, _ := topKey(doc, sopsKey)
		if k == nil {
			continue
		}
		for i := k.Line - 1; i < len(lines); i++ {
			l := lines[i]
			if i > k.Line-1 && len(bytes.TrimSpace(l)) > 0 && l[0] != ' ' && l[0] != '\t' && l[0] != '#' {
				break
			}
			lines[i] = lineEnd(l)
		}
	}
	return bytes.Join(lines, nil)
}

// lineEnd returns the line break of l, or nothing.
func lineEnd(l []byte) []byte {
	if bytes.HasSuffix(l, []byte("\n")) {
		return []byte("\n")
	}
	return nil
}

// Position returns where in the file the problem is (0, 0 when unknown).
func (e *Error) Position() (line, column int) { return e.Line, e.Column }
