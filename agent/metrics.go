package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"berth.dev/berth/reconcile"
)

// metrics are the agent's Prometheus collectors. No label carries a
// credential: revisions are commit hashes, the source URL has no user
// info.
type metrics struct {
	reg            *prometheus.Registry
	reconcileDur   *prometheus.HistogramVec
	reconciles     *prometheus.CounterVec
	fetchDur       prometheus.Histogram
	fetchErrors    prometheus.Counter
	triggers       *prometheus.CounterVec
	pods           *prometheus.GaugeVec
	restarts       prometheus.Gauge
	rollbacks      prometheus.Counter
	lastApplied    prometheus.Gauge
	revision       *prometheus.GaugeVec
	suspended      prometheus.Gauge
	webhookResults *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		reconcileDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_reconcile_duration_seconds", Help: "Duration of reconcile passes by outcome.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"outcome"}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_reconcile_total", Help: "Reconcile passes by outcome (applied, unchanged, refused, failed, suspended) and reason.",
		}, []string{"outcome", "reason"}),
		fetchDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "berth_fetch_duration_seconds", Help: "Duration of repository fetches.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		fetchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_fetch_errors_total", Help: "Failed repository fetches.",
		}),
		triggers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_triggers_total", Help: "Triggers received, by kind (several may collapse into one pass).",
		}, []string{"trigger"}),
		pods: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_pods", Help: "Pods berth manages on this host, by phase.",
		}, []string{"phase"}),
		restarts: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "berth_container_restarts", Help: "Container restarts (failed exits) of the managed pods.",
		}),
		rollbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_rollbacks_total", Help: "Automatic rollbacks to the last good revision.",
		}),
		lastApplied: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "berth_last_applied_timestamp_seconds", Help: "When a revision was last applied, Unix time.",
		}),
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_revision_info", Help: "The fetched, applied and last good revisions (value 1).",
		}, []string{"kind", "commit"}),
		suspended: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "berth_suspended", Help: "1 while the agent is suspended.",
		}),
		webhookResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_webhook_requests_total", Help: "Webhook requests by HTTP status code.",
		}, []string{"code"}),
	}
	m.reg.MustRegister(m.reconcileDur, m.reconciles, m.fetchDur, m.fetchErrors, m.triggers, m.pods,
		m.restarts, m.rollbacks, m.lastApplied, m.revision, m.suspended, m.webhookResults,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, p := range []reconcile.PodPhase{reconcile.PodPending, reconcile.PodRunning, reconcile.PodSucceeded, reconcile.PodFailed} {
		m.pods.WithLabelValues(string(p))
	}
	return m
}

func (m *metrics) setRevision(kind, commit string) {
	m.revision.DeletePartialMatch(prometheus.Labels{"kind": kind})
	if commit != "" {
		m.revision.WithLabelValues(kind, commit).Set(1)
	}
}
