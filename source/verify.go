package source

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing"
	"golang.org/x/crypto/ssh"
)

// VerifyMode says which objects must carry a trusted signature, as
// Flux's HEAD, Tag and TagAndHEAD do.
type VerifyMode string

// Verify modes.
const (
	VerifyNone       VerifyMode = ""
	VerifyHead       VerifyMode = "head"         // the commit
	VerifyTag        VerifyMode = "tag"          // the annotated tag the ref names
	VerifyTagAndHead VerifyMode = "tag-and-head" // both
)

// ParseVerifyMode parses "none", "head", "tag" or "tag-and-head".
func ParseVerifyMode(s string) (VerifyMode, error) {
	switch m := VerifyMode(strings.ToLower(strings.TrimSpace(s))); m {
	case "none", "":
		return VerifyNone, nil
	case VerifyHead, VerifyTag, VerifyTagAndHead:
		return m, nil
	}
	return "", fmt.Errorf("verify mode %q: want none, head, tag or tag-and-head", s)
}

// Signature errors.
var (
	// ErrUnsigned means an object that must be signed is not.
	ErrUnsigned = errors.New("not signed")
	// ErrUntrusted means a signature does not verify against any trusted
	// key.
	ErrUntrusted = errors.New("signature not made by a trusted key")
)

// TrustedKeys are the keys whose signatures make a revision trusted:
// OpenPGP public keys (armored keyrings) and SSH keys (allowed_signers
// lines, as git's gpg.ssh.allowedSignersFile).
type TrustedKeys struct {
	pgp openpgp.EntityList
	ssh []allowedSigner
}

type allowedSigner struct {
	principals string
	key        ssh.PublicKey
}

// LoadTrustedKeys reads trusted keys from files: each is an armored
// OpenPGP keyring ("-----BEGIN PGP PUBLIC KEY BLOCK-----") or an
// allowed_signers file ("principals [options] keytype base64 [comment]"
// per line; only keys whose namespaces option, if any, includes "git" are
// taken).
func LoadTrustedKeys(paths ...string) (*TrustedKeys, error) {
	k := &TrustedKeys{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("trusted keys: %w", err)
		}
		if bytes.Contains(b, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
			el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
			if err != nil {
				return nil, fmt.Errorf("trusted keys %s: %w", p, err)
			}
			k.pgp = append(k.pgp, el...)
			continue
		}
		signers, err := parseAllowedSigners(b)
		if err != nil {
			return nil, fmt.Errorf("trusted keys %s: %w", p, err)
		}
		k.ssh = append(k.ssh, signers...)
	}
	if len(k.pgp) == 0 && len(k.ssh) == 0 {
		return nil, errors.New("trusted keys: no key found")
	}
	return k, nil
}

func parseAllowedSigners(b []byte) ([]allowedSigner, error) {
	var out []allowedSigner
	sc := bufio.NewScanner(bytes.NewReader(b))
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		principals, rest, ok := strings.Cut(text, " ")
		if !ok {
			return nil, fmt.Errorf("line %d: want principals and a key", line)
		}
		key, _, options, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(rest)))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		take := true
		for _, o := range options {
			name, val, _ := strings.Cut(o, "=")
			switch strings.ToLower(name) {
			case "namespaces":
				take = false
				for _, ns := range strings.Split(strings.Trim(val, `"`), ",") {
					if strings.TrimSpace(ns) == "git" {
						take = true
					}
				}
			case "cert-authority":
				return nil, fmt.Errorf("line %d: cert-authority keys are not supported", line)
			}
		}
		if take {
			out = append(out, allowedSigner{principals: principals, key: key})
		}
	}
	return out, sc.Err()
}

// Verify checks that rev carries signatures from trusted keys, as mode
// asks: the commit (VerifyHead), the annotated tag its ref names
// (VerifyTag), or both. It returns who signed (an OpenPGP identity or the
// allowed_signers principals). The error wraps ErrUnsigned or
// ErrUntrusted and names the object.
func (s *Source) Verify(ctx context.Context, rev *Revision, mode VerifyMode, keys *TrustedKeys) (string, error) {
	if mode == VerifyNone {
		return "", nil
	}
	if s.kind == KindDir {
		return "", fmt.Errorf("source: %s is a directory; it has no commits to verify", s.url)
	}
	if keys == nil {
		return "", errors.New("source: no trusted keys to verify with")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var signers []string
	if mode == VerifyTag || mode == VerifyTagAndHead {
		name, ok := strings.CutPrefix(rev.Ref, "refs/tags/")
		if !ok {
			return "", fmt.Errorf("revision %s was not resolved from a tag (ref %q), and a signed tag is required", rev.ShortCommit(), rev.Ref)
		}
		ref, err := s.git.repo.Reference(plumbing.ReferenceName(rev.Ref), true)
		if err != nil {
			return "", fmt.Errorf("tag %s: %w", name, err)
		}
		tag, err := s.git.repo.TagObject(ref.Hash())
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return "", fmt.Errorf("tag %s is a lightweight tag: %w", name, ErrUnsigned)
		}
		if err != nil {
			return "", fmt.Errorf("tag %s: %w", name, err)
		}
		who, err := keys.verifyObject(tag.PGPSignature, tag.EncodeWithoutSignature)
		if err != nil {
			return "", fmt.Errorf("tag %s: %w", name, err)
		}
		signers = append(signers, who)
	}
	if mode == VerifyHead || mode == VerifyTagAndHead {
		c, err := s.git.repo.CommitObject(plumbing.NewHash(rev.Commit))
		if err != nil {
			return "", fmt.Errorf("commit %s: %w", rev.ShortCommit(), err)
		}
		who, err := keys.verifyObject(c.PGPSignature, c.EncodeWithoutSignature)
		if err != nil {
			return "", fmt.Errorf("commit %s: %w", rev.ShortCommit(), err)
		}
		signers = append(signers, who)
	}
	return strings.Join(signers, ", "), nil
}

// verifyObject checks sig over the object encoded without it.
func (k *TrustedKeys) verifyObject(sig string, encode func(plumbing.EncodedObject) error) (string, error) {
	if strings.TrimSpace(sig) == "" {
		return "", ErrUnsigned
	}
	obj := &plumbing.MemoryObject{}
	if err := encode(obj); err != nil {
		return "", err
	}
	r, err := obj.Reader()
	if err != nil {
		return "", err
	}
	payload, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	switch {
	case strings.Contains(sig, "-----BEGIN PGP SIGNATURE-----"):
		if len(k.pgp) == 0 {
			return "", fmt.Errorf("OpenPGP signature, but no OpenPGP key is trusted: %w", ErrUntrusted)
		}
		e, err := openpgp.CheckArmoredDetachedSignature(k.pgp, bytes.NewReader(payload), strings.NewReader(sig), nil)
		if err != nil {
			return "", fmt.Errorf("OpenPGP: %v: %w", err, ErrUntrusted)
		}
		for name := range e.Identities {
			return name, nil
		}
		return fmt.Sprintf("%X", e.PrimaryKey.Fingerprint), nil
	case strings.Contains(sig, "-----BEGIN SSH SIGNATURE-----"):
		return k.verifySSH(payload, sig)
	}
	return "", fmt.Errorf("unsupported signature format: %w", ErrUntrusted)
}

// verifySSH checks an SSHSIG signature (namespace "git") over payload,
// following OpenSSH's PROTOCOL.sshsig.
func (k *TrustedKeys) verifySSH(payload []byte, armored string) (string, error) {
	block, _ := pem.Decode([]byte(armored))
	if block == nil || block.Type != "SSH SIGNATURE" {
		return "", fmt.Errorf("malformed SSH signature: %w", ErrUntrusted)
	}
	var sig struct {
		Magic     [6]byte
		Version   uint32
		PublicKey []byte
		Namespace string
		Reserved  string
		HashAlg   string
		Signature []byte
	}
	if err := unmarshalSSHSig(block.Bytes, &sig.Magic, &sig.Version, &sig.PublicKey, &sig.Namespace, &sig.Reserved, &sig.HashAlg, &sig.Signature); err != nil {
		return "", fmt.Errorf("malformed SSH signature: %v: %w", err, ErrUntrusted)
	}
	if string(sig.Magic[:]) != "SSHSIG" || sig.Version != 1 {
		return "", fmt.Errorf("not an SSHSIG v1 signature: %w", ErrUntrusted)
	}
	if sig.Namespace != "git" {
		return "", fmt.Errorf("SSH signature for namespace %q, not \"git\": %w", sig.Namespace, ErrUntrusted)
	}
	pub, err := ssh.ParsePublicKey(sig.PublicKey)
	if err != nil {
		return "", fmt.Errorf("SSH signature key: %v: %w", err, ErrUntrusted)
	}
	var signer *allowedSigner
	for i := range k.ssh {
		if bytes.Equal(k.ssh[i].key.Marshal(), pub.Marshal()) {
			signer = &k.ssh[i]
			break
		}
	}
	if signer == nil {
		return "", fmt.Errorf("SSH key %s is not in the allowed signers: %w", ssh.FingerprintSHA256(pub), ErrUntrusted)
	}
	var h hash.Hash
	switch sig.HashAlg {
	case "sha512":
		h = sha512.New()
	case "sha256":
		h = sha256.New()
	default:
		return "", fmt.Errorf("SSH signature hash %q: %w", sig.HashAlg, ErrUntrusted)
	}
	h.Write(payload)
	var signed bytes.Buffer
	signed.WriteString("SSHSIG")
	for _, s := range [][]byte{[]byte(sig.Namespace), []byte(sig.Reserved), []byte(sig.HashAlg), h.Sum(nil)} {
		writeSSHString(&signed, s)
	}
	var wire ssh.Signature
	if err := ssh.Unmarshal(sig.Signature, &wire); err != nil {
		return "", fmt.Errorf("malformed SSH signature blob: %v: %w", err, ErrUntrusted)
	}
	if err := pub.Verify(signed.Bytes(), &wire); err != nil {
		return "", fmt.Errorf("SSH signature by %s does not verify: %v: %w", ssh.FingerprintSHA256(pub), err, ErrUntrusted)
	}
	return signer.principals, nil
}

func writeSSHString(b *bytes.Buffer, s []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(s)))
	b.Write(n[:])
	b.Write(s)
}

// unmarshalSSHSig reads the fields of an SSHSIG blob in order: a 6-byte
// magic, a uint32 and then strings (as string or []byte).
func unmarshalSSHSig(b []byte, fields ...any) error {
	for _, f := range fields {
		switch v := f.(type) {
		case *[6]byte:
			if len(b) < 6 {
				return io.ErrUnexpectedEOF
			}
			copy(v[:], b[:6])
			b = b[6:]
		case *uint32:
			if len(b) < 4 {
				return io.ErrUnexpectedEOF
			}
			*v = binary.BigEndian.Uint32(b)
			b = b[4:]
		case *[]byte, *string:
			if len(b) < 4 {
				return io.ErrUnexpectedEOF
			}
			n := binary.BigEndian.Uint32(b)
			b = b[4:]
			if uint64(n) > uint64(len(b)) {
				return io.ErrUnexpectedEOF
			}
			if p, ok := v.(*[]byte); ok {
				*p = b[:n]
			} else {
				*v.(*string) = string(b[:n])
			}
			b = b[n:]
		}
	}
	return nil
}
