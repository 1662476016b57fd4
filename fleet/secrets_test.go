package fleet_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/fleet"
	"berth.dev/berth/preview"
	"berth.dev/berth/secrets/secretstest"
)

// TestSecretReaders: from the recipients in encrypted files and the
// devices' public keys alone, the preview says who reads each Secret and
// which pods wait on the other devices.
func TestSecretReaders(t *testing.T) {
	berlin1, berlin2, paris := secretstest.NewIdentity(t), secretstest.NewIdentity(t), secretstest.NewIdentity(t)
	const value = "canary-fleet-0b4f1e"
	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: payment, namespace: shop}\nstringData: {key: " + value + "}\n"
	enc := secretstest.Encrypt(t, secret, []string{berlin1.Recipient, berlin2.Recipient}, "--encrypted-regex", "^(data|stringData)$")
	cashier := `apiVersion: v1
kind: Pod
metadata: {name: cashier, namespace: shop}
spec:
  containers:
  - name: main
    image: example.local/app:1
    env:
    - name: KEY
      valueFrom: {secretKeyRef: {name: payment, key: key}}
`
	other := "apiVersion: v1\nkind: Pod\nmetadata: {name: clock, namespace: shop}\nspec:\n  containers: [{name: main, image: example.local/clock:1}]\n"
	base := fleet.Revision{Name: "main", Commit: baseCommit, Files: fstest.MapFS{"clock.yaml": {Data: []byte(other)}}}
	head := fleet.Revision{Name: "feature", Commit: headCommit, Files: fstest.MapFS{
		"clock.yaml": {Data: []byte(other)}, "payment.yaml": {Data: enc}, "cashier.yaml": {Data: []byte(cashier)}}}
	inv, err := fleet.ParseInventory(strings.NewReader(`devices:
  - {name: berlin-001, ageRecipient: ` + berlin1.Recipient + `}
  - {name: berlin-002, ageRecipient: ` + berlin2.Recipient + `}
  - {name: paris-001, ageRecipient: ` + paris.Recipient + `}
  - {name: lab-001}
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := fleet.Plan(context.Background(), base, head, inv, fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []fleet.SecretReaders{{Secret: "shop/payment", Source: "./payment.yaml:1:1",
		Readers: []string{"berlin-001", "berlin-002"}, Others: 2, Waiting: map[string]int{"Pod/shop/cashier": 2}}}
	if diff := cmp.Diff(want, r.Secrets); diff != "" {
		t.Errorf("secret readers (-want +got):\n%s", diff)
	}
	if len(r.Groups) != 2 || r.Evaluations != 2 {
		t.Errorf("%d groups and %d evaluations, want 2 groups (readers, others) sharing one load per revision", len(r.Groups), r.Evaluations)
	}
	var text, md bytes.Buffer
	if err := fleet.WriteText(&text, r, preview.TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := fleet.WriteMarkdown(&md, r, preview.MarkdownOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "Secret shop/payment (./payment.yaml:1:1): readable on 2 of 4 devices: berlin-001, berlin-002") ||
		!strings.Contains(text.String(), "Pod/shop/cashier waits on 2 devices") ||
		!strings.Contains(text.String(), "no changes; 1 object waits for a Secret not encrypted to these devices") ||
		!strings.Contains(text.String(), "  Pod/shop/cashier waits for Secret payment: not encrypted to this device's age identity") {
		t.Errorf("text report:\n%s", text.String())
	}
	if !strings.Contains(md.String(), "| `shop/payment` | berlin-001, berlin-002 | 2 | `Pod/shop/cashier` (2) |") {
		t.Errorf("markdown report:\n%s", md.String())
	}
	var js bytes.Buffer
	if err := fleet.WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"text": text.String(), "markdown": md.String(), "json": js.String()} {
		if strings.Contains(out, value) || strings.Contains(out, "AGE-SECRET-KEY") {
			t.Errorf("%s report holds a secret", name)
		}
	}

	// A device's public key is checked.
	if _, err := fleet.ParseInventory(strings.NewReader("devices:\n  - {name: a, ageRecipient: age1nope}\n")); err == nil {
		t.Error("an invalid ageRecipient was accepted")
	}
}
