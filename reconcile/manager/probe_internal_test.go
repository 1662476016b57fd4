package manager

import (
	"berth.dev/berth/reconcile"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func probeOf(h reconcile.ProbeHandler) *reconcile.Probe {
	p := probeDefaults(reconcile.Probe{ProbeHandler: h})
	return &p
}

func TestNetworkProbes(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Probe") != "yes" {
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	mux.HandleFunc("/bad", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	host, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)

	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	gs := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(gl)
	defer gs.Stop()
	gport := int32(gl.Addr().(*net.TCPAddr).Port)
	hs.SetServingStatus("db", healthpb.HealthCheckResponse_NOT_SERVING)

	c := &reconcile.Container{Name: "main", Ports: []reconcile.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}
	hdr := []reconcile.HTTPHeader{{Name: "X-Probe", Value: "yes"}}
	svc := "db"
	tests := []struct {
		name string
		h    reconcile.ProbeHandler
		want bool
	}{
		{"http 200", reconcile.ProbeHandler{HTTPGet: &reconcile.HTTPGetAction{Path: "/ok", Port: reconcile.FromInt(int32(port)), HTTPHeaders: hdr}}, true},
		{"http named port", reconcile.ProbeHandler{HTTPGet: &reconcile.HTTPGetAction{Path: "ok", Port: reconcile.FromString("http"), HTTPHeaders: hdr}}, true},
		{"http header missing", reconcile.ProbeHandler{HTTPGet: &reconcile.HTTPGetAction{Path: "/ok", Port: reconcile.FromInt(int32(port))}}, false},
		{"http 503", reconcile.ProbeHandler{HTTPGet: &reconcile.HTTPGetAction{Path: "/bad", Port: reconcile.FromInt(int32(port))}}, false},
		{"http redirect followed", reconcile.ProbeHandler{HTTPGet: &reconcile.HTTPGetAction{Path: "/moved", Port: reconcile.FromInt(int32(port)), HTTPHeaders: hdr}}, true},
		{"http unknown port name", reconcile.ProbeHandler{HTTPGet: &reconcile.HTTPGetAction{Path: "/ok", Port: reconcile.FromString("nope")}}, false},
		{"tcp open", reconcile.ProbeHandler{TCPSocket: &reconcile.TCPSocketAction{Port: reconcile.FromInt(int32(port))}}, true},
		{"tcp closed", reconcile.ProbeHandler{TCPSocket: &reconcile.TCPSocketAction{Port: reconcile.FromInt(int32(closedPort))}}, false},
		{"grpc serving", reconcile.ProbeHandler{GRPC: &reconcile.GRPCAction{Port: gport}}, true},
		{"grpc not serving", reconcile.ProbeHandler{GRPC: &reconcile.GRPCAction{Port: gport, Service: &svc}}, false},
		{"grpc closed", reconcile.ProbeHandler{GRPC: &reconcile.GRPCAction{Port: int32(closedPort)}}, false},
	}
	w := &podWorker{m: &Manager{}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := w.runProbe(t.Context(), probeOf(tt.h), c, host); got != tt.want {
				t.Errorf("probe = %v, want %v", got, tt.want)
			}
		})
	}
}
