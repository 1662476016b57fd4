// Package mosquitto starts Debian's mosquitto MQTT broker on loopback for
// tests: a generated configuration on a free port, optionally with TLS
// (a generated CA, server and client certificate) and username/password
// authentication. The broker is stopped by its PID when the test ends. A
// machine without mosquitto fails the test; it never skips (except in
// -short mode, which runs no integration test).
package mosquitto

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Options choose the broker's security.
type Options struct {
	// TLS serves MQTT over TLS and requires a client certificate.
	TLS bool
	// Username and Password, when set, are required of every client
	// (anonymous clients are refused).
	Username, Password string
}

// Broker is a running mosquitto.
type Broker struct {
	// URL is where clients connect: mqtt://127.0.0.1:PORT or
	// mqtts://127.0.0.1:PORT.
	URL string
	// Addr is host:port.
	Addr string
	// CAFile, CertFile and KeyFile are the CA that signed the broker's
	// certificate and a client certificate it accepts (with TLS).
	CAFile, CertFile, KeyFile string
	// PID is the broker's process.
	PID int

	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

// Start starts a broker for tb and stops it when tb ends.
func Start(tb testing.TB, opts Options) *Broker {
	tb.Helper()
	if testing.Short() {
		tb.Skip("starts mosquitto; run without -short")
	}
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			tb.Fatalf("mosquitto not found (scripts/install-deps.sh installs it): %v", err)
		}
		bin = "/usr/sbin/mosquitto"
	}
	dir := tb.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	b := &Broker{Addr: addr, URL: "mqtt://" + addr, logPath: filepath.Join(dir, "mosquitto.log"), exited: make(chan struct{})}
	var conf bytes.Buffer
	fmt.Fprintf(&conf, "user root\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n")
	fmt.Fprintf(&conf, "listener %s 127.0.0.1\n", port)
	if opts.TLS {
		b.URL = "mqtts://" + addr
		b.CAFile, b.CertFile, b.KeyFile = writeCerts(tb, dir)
		fmt.Fprintf(&conf, "cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\ntls_version tlsv1.2\n",
			b.CAFile, filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"))
	}
	if opts.Username != "" {
		pw := filepath.Join(dir, "passwd")
		if out, err := exec.Command("mosquitto_passwd", "-c", "-b", pw, opts.Username, opts.Password).CombinedOutput(); err != nil {
			tb.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
		fmt.Fprintf(&conf, "allow_anonymous false\npassword_file %s\n", pw)
	} else {
		conf.WriteString("allow_anonymous true\n")
	}
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, conf.Bytes(), 0o600); err != nil {
		tb.Fatal(err)
	}
	b.cmd = exec.Command(bin, "-c", confPath)
	logFile, err := os.Create(b.logPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer logFile.Close()
	b.cmd.Stdout, b.cmd.Stderr = logFile, logFile
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		tb.Fatalf("start mosquitto: %v", err)
	}
	b.PID = b.cmd.Process.Pid
	go func() { b.cmd.Wait(); close(b.exited) }()
	tb.Cleanup(func() {
		b.Stop()
		if tb.Failed() {
			tb.Logf("mosquitto log:\n%s", b.Log())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return b
		}
		select {
		case <-b.exited:
			tb.Fatalf("mosquitto exited:\n%s", b.Log())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("mosquitto not listening on %s:\n%s", addr, b.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop terminates the broker by its PID and waits for it; it is safe to
// call twice.
func (b *Broker) Stop() {
	select {
	case <-b.exited:
		return
	default:
	}
	_ = syscall.Kill(b.PID, syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(b.PID, syscall.SIGKILL)
		<-b.exited
	}
}

// Log returns what the broker logged.
func (b *Broker) Log() string {
	data, _ := os.ReadFile(b.logPath)
	return string(data)
}

// writeCerts writes a CA, a server certificate for 127.0.0.1 and a client
// certificate into dir, and returns the CA's and the client's files.
func writeCerts(tb testing.TB, dir string) (ca, cert, key string) {
	tb.Helper()
	caKey := newKey(tb)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	ca = filepath.Join(dir, "ca.pem")
	writePEM(tb, ca, "CERTIFICATE", caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage, ip bool) {
		k := newKey(tb)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if ip {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			tb.Fatal(err)
		}
		kd, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			tb.Fatal(err)
		}
		writePEM(tb, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
		writePEM(tb, filepath.Join(dir, name+"-key.pem"), "EC PRIVATE KEY", kd)
	}
	issue("server", 2, x509.ExtKeyUsageServerAuth, true)
	issue("client", 3, x509.ExtKeyUsageClientAuth, false)
	return ca, filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func writePEM(tb testing.TB, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// Proxy forwards TCP connections to addr; Cut closes every connection at
// once and refuses new ones, as a device losing power or network would,
// without an MQTT DISCONNECT (so the broker publishes the Last Will);
// Restore lets connections through again.
type Proxy struct {
	// Addr is where clients connect.
	Addr string

	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
	down  bool
}

// NewProxy starts a proxy to addr for tb.
func NewProxy(tb testing.TB, addr string) *Proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{Addr: l.Addr().String(), l: l}
	tb.Cleanup(func() { l.Close(); p.Cut() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			down := p.down
			p.mu.Unlock()
			if down {
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

// Restore accepts connections again after Cut.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// Cut closes every forwarded connection and refuses new ones until
// Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
