package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"berth.dev/berth/internal/record"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/secrets"
)

// keygenCommand is `berth keygen`: make this device's age identity and
// print its public key.
func keygenCommand() command {
	return command{
		name: "keygen", args: "",
		summary: "make this device's age identity (for SOPS-encrypted secrets) and print its public key",
		run:     runKeygen,
	}
}

func runKeygen(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected arguments %q", args)
	}
	path := c.ageIdentityFile()
	recipient, created, err := secrets.Keygen(path)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(c.stderr, "created age identity %s (keep it on this device only)\n", path)
	} else {
		fmt.Fprintf(c.stderr, "age identity %s already exists; its public key:\n", path)
	}
	fmt.Fprintln(c.stdout, recipient)
	return nil
}

// ageIdentityFile is --age-identity, or its default under the state
// directory.
func (c *cli) ageIdentityFile() string {
	if c.ageIdentity != "" {
		return c.ageIdentity
	}
	return filepath.Join(c.stateDir, secrets.DefaultIdentityFile)
}

// secretFlags registers the flags of encrypted secrets, shared by every
// command.
func (c *cli) secretFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ageIdentity, "age-identity", "", "this device's age identity file, for SOPS-encrypted files (default STATE-DIR/"+secrets.DefaultIdentityFile+"; made by berth keygen)")
}

// keyrings opens one keyring per process and state directory.
var keyrings sync.Map // identity file + "\x00" + state dir → func() (*secrets.Keyring, error)

// keyring returns this device's keyring: its age identity and the key of
// Secret digests under the state directory.
func (c *cli) keyring() (*secrets.Keyring, error) {
	return openKeyring(c.ageIdentityFile(), c.stateDir)
}

// openKeyring opens the keyring of an identity file and a state directory
// ("" keys digests for this process only) once per process.
func openKeyring(identityFile, stateDir string) (*secrets.Keyring, error) {
	open, _ := keyrings.LoadOrStore(identityFile+"\x00"+stateDir, sync.OnceValues(func() (*secrets.Keyring, error) {
		return secrets.Open(identityFile, stateDir)
	}))
	return open.(func() (*secrets.Keyring, error))()
}

// decrypt is the loader's Decrypt hook: SOPS-encrypted files are opened
// with this device's keyring, others are loaded as they are (so a host
// without secrets needs no identity and writes no key).
func (c *cli) decrypt(name string, data []byte) ([]byte, error) {
	if !secrets.Looks(data) {
		return data, nil
	}
	k, err := c.keyring()
	if err != nil {
		return nil, err
	}
	return k.Decrypt(name, data)
}

// prepare readies a loaded revision for this device (see
// secrets.Keyring.Prepare) and returns the objects to expand and those
// waiting for Secrets this device cannot read.
func (c *cli) prepare(objs []reconcile.Object) ([]reconcile.Object, []secrets.Waiting, error) {
	k, err := c.keyring()
	if err != nil {
		return nil, nil, err
	}
	out, waiting, err := k.Prepare(objs)
	if err != nil {
		return nil, nil, err
	}
	return out, secrets.ForNode(waiting, reconcile.NotForNodes(objs, c.node())), nil
}

// waitingRecord is the record of the objects the last revision loaded
// for this device holds back, for `berth status`. It names objects and
// Secrets, never values.
type waitingRecord struct {
	Commit  string            `json:"commit"`
	Waiting []secrets.Waiting `json:"waiting"`
	// NoIdentity is set when the device has no age identity at all, the
	// likely reason why it reads none of its Secrets.
	NoIdentity string `json:"noIdentity,omitempty"`
}

// waitingRecordName is the file of waitingRecord under the state directory.
const waitingRecordName = "secrets-waiting.json"

// recordWaiting stores which objects wait for Secrets, for `berth status`.
func (c *cli) recordWaiting(commit string, waiting []secrets.Waiting) error {
	if waiting == nil {
		waiting = []secrets.Waiting{}
	}
	return record.Write(c.stateDir, waitingRecordName, c.waitingReport(commit, waiting))
}

// waitingReport is what apply and status say about waiting objects.
func (c *cli) waitingReport(commit string, waiting []secrets.Waiting) waitingRecord {
	r := waitingRecord{Commit: commit, Waiting: waiting}
	if k, err := c.keyring(); len(waiting) > 0 && err == nil && len(k.Recipients()) == 0 {
		r.NoIdentity = c.ageIdentityFile()
	}
	return r
}

// readWaiting returns what the last loaded revision holds back.
func (c *cli) readWaiting() *waitingRecord {
	var r waitingRecord
	if ok, err := record.Read(c.stateDir, waitingRecordName, &r); !ok || err != nil || len(r.Waiting) == 0 {
		return nil
	}
	return &r
}

// writeWaiting prints the objects that wait for Secrets, one a line.
func writeWaiting(w io.Writer, r *waitingRecord) {
	if r == nil || len(r.Waiting) == 0 {
		return
	}
	fmt.Fprintf(w, "not started on this device (%d):\n", len(r.Waiting))
	for _, wt := range r.Waiting {
		fmt.Fprintf(w, "  %s: %s\n", wt.Source, wt)
	}
	if r.NoIdentity != "" {
		fmt.Fprintf(w, "  this device has no age identity in %s: berth keygen makes one and prints the public key to encrypt its Secrets to\n", r.NoIdentity)
	}
}

// previewPrepare is prepare for previews of two revisions, which need no
// host: Secret digests are keyed for this process only, so no key is
// written to the state directory (CI has none).
func (c *cli) previewPrepare(objs []reconcile.Object) ([]reconcile.Object, []secrets.Waiting, error) {
	k, err := openKeyring(c.ageIdentityFile(), "")
	if err != nil {
		return nil, nil, err
	}
	return k.Prepare(objs)
}
