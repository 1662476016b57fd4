package testenv

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RegistryWithTokenAuth is Registry with the registry token
// authentication flow: the registry answers 401 with a Bearer challenge
// naming a token server (on another loopback port, run by the test) that
// issues RS256-signed tokens to user with password, by OAuth POST or by
// GET with basic authentication.
func RegistryWithTokenAuth(tb testing.TB, user, password string) string {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth-test-token-issuer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	bundle := filepath.Join(dir, "token-ca.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	const service, issuer = "berth-test-registry", "berth-test-issuer"
	sign := func(scope string) (string, error) {
		var access []map[string]any
		for _, s := range strings.Fields(scope) {
			// repository:NAME:ACTIONS
			parts := strings.Split(s, ":")
			if len(parts) < 3 {
				continue
			}
			access = append(access, map[string]any{"type": parts[0], "name": strings.Join(parts[1:len(parts)-1], ":"),
				"actions": strings.Split(parts[len(parts)-1], ",")})
		}
		now := time.Now()
		hdr, _ := json.Marshal(map[string]any{"alg": "RS256", "typ": "JWT", "x5c": []string{base64.StdEncoding.EncodeToString(der)}})
		claims, _ := json.Marshal(map[string]any{"iss": issuer, "sub": user, "aud": service, "exp": now.Add(5 * time.Minute).Unix(),
			"nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(), "jti": now.Format(time.RFC3339Nano), "access": access})
		enc := base64.RawURLEncoding
		payload := enc.EncodeToString(hdr) + "." + enc.EncodeToString(claims)
		sum := sha256.Sum256([]byte(payload))
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
		if err != nil {
			return "", err
		}
		return payload + "." + enc.EncodeToString(sig), nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var u, p, scope string
		if r.Method == http.MethodPost {
			_ = r.ParseForm()
			u, p, scope = r.PostForm.Get("username"), r.PostForm.Get("password"), r.PostForm.Get("scope")
		} else {
			u, p, _ = r.BasicAuth()
			scope = strings.Join(r.URL.Query()["scope"], " ")
		}
		if u != user || p != password {
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return
		}
		tok, err := sign(scope)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": 300})
	})}
	go srv.Serve(l)
	tb.Cleanup(func() { srv.Close() })
	auth := "auth:\n  token:\n    realm: http://" + l.Addr().String() + "/token\n    service: " + service +
		"\n    issuer: " + issuer + "\n    rootcertbundle: " + bundle + "\n"
	return startRegistryConfig(tb, auth, true)
}
