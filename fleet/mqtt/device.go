package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/hashicorp/go-hclog"

	"berth.dev/berth/fleet/rollout"
)

// Device is an agent's connection to the broker: it publishes the
// device's status and its rollout records, and follows what its rollout
// decision needs (see Follow).
type Device struct {
	opts   Options
	node   string
	client paho.Client
	log    hclog.Logger
	syncT  string        // this connection's sync marker topic
	bell   chan struct{} // rings the follower: the interest or the connection changed
	done   chan struct{}

	mu   sync.Mutex
	last []byte // latest status, sent again on every (re)connect
	// recs are the rollout records this device published, by topic, sent
	// again on every (re)connect; recOrder their commits, oldest first.
	recs     map[string][]byte
	recTopic map[string][]string
	recOrder []string
	fol      following
	wake     func() // called when what the device follows changes
}

// Connect connects the device node to the broker, with a Last Will that
// marks it offline. It waits for the first connection up to the connect
// timeout; when the broker cannot be reached it returns the error, and
// the caller may run on without status. onChange, when set, is called
// (from the client's goroutine, quickly) whenever what the device
// follows changes.
func Connect(ctx context.Context, opts Options, node string, onChange func()) (*Device, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if !validSegment(node) {
		return nil, fmt.Errorf("mqtt: node name %q cannot be a topic segment", node)
	}
	if opts.ClientID == "" {
		opts.ClientID = "berth-" + opts.Fleet + "-" + node
	}
	d := &Device{opts: opts, node: node, log: opts.Logger.Named("mqtt"), wake: onChange,
		syncT: "berth/" + opts.Fleet + "/_sync/" + opts.ClientID,
		bell:  make(chan struct{}, 1), done: make(chan struct{}),
		recs: map[string][]byte{}, recTopic: map[string][]string{}}
	d.fol.self = node
	d.fol.reset("", nil)
	client, err := opts.client(func(co *paho.ClientOptions) {
		co.SetWill(OnlineTopic(opts.Fleet, node), "false", 1, true)
	}, d.onConnect)
	if err != nil {
		return nil, err
	}
	d.client = client
	tok := client.Connect()
	if err := wait(ctx, tok, opts.ConnectTimeout); err != nil {
		if opts.retry && ctx.Err() == nil {
			d.log.Warn("cannot reach the broker yet; trying on in the background", "broker", redact(opts.URL), "error", err)
			go d.follow()
			return d, nil
		}
		client.Disconnect(0)
		return nil, fmt.Errorf("mqtt: connect to %s: %w", redact(opts.URL), err)
	}
	go d.follow()
	return d, nil
}

// ConnectRetrying is Connect for a long-running agent: when the broker
// cannot be reached at first, it logs so and keeps trying in the
// background, instead of failing; the device runs without the fleet's
// status meanwhile (Follow reports it incomplete).
func ConnectRetrying(ctx context.Context, opts Options, node string, onChange func()) (*Device, error) {
	opts.retry = true
	return Connect(ctx, opts, node, onChange)
}

// onConnect runs on every (re)connect: mark the device online, publish
// its latest status and rollout records, and let the follower subscribe
// again (the session is clean).
func (d *Device) onConnect(c paho.Client) {
	d.log.Info("connected to the broker", "broker", redact(d.opts.URL), "fleet", d.opts.Fleet)
	d.mu.Lock()
	d.fol.connected()
	last := d.last
	recs := make(map[string][]byte, len(d.recs))
	for t, b := range d.recs {
		recs[t] = b
	}
	d.mu.Unlock()
	c.Publish(OnlineTopic(d.opts.Fleet, d.node), 1, true, "true")
	if last != nil {
		c.Publish(StatusTopic(d.opts.Fleet, d.node), 1, true, last)
	}
	for t, b := range recs {
		c.Publish(t, 1, true, b)
	}
	d.ring()
}

func (d *Device) ring() {
	select {
	case d.bell <- struct{}{}:
	default:
	}
}

func (d *Device) notify() {
	if d.wake != nil {
		d.wake()
	}
}

// Publish sends the device's status, retained, and its record in the
// rollout of its desired revision (see RecordTopic). When the broker is
// not reachable they are kept and sent on reconnect.
func (d *Device) Publish(s DeviceStatus) error {
	s.Node = d.node
	s.Online = true
	if s.LastSeen.IsZero() {
		s.LastSeen = time.Now().UTC()
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.last = b
	send, clear := d.records(&s)
	d.mu.Unlock()
	if !d.client.IsConnectionOpen() {
		return nil
	}
	for _, t := range clear {
		d.client.Publish(t, 1, true, []byte{})
	}
	for t, p := range send {
		d.client.Publish(t, 1, true, p)
	}
	tok := d.client.Publish(StatusTopic(d.opts.Fleet, d.node), 1, true, b)
	if !tok.WaitTimeout(d.opts.ConnectTimeout) {
		return fmt.Errorf("mqtt: publish status: no answer within %s", d.opts.ConnectTimeout)
	}
	return tok.Error()
}

// records updates the device's rollout records from s and returns those
// that changed and the topics to clear: a device keeps its records of
// its desired revision and of the one before (devices of later waves
// may still be rolling that one out) and clears older ones, so the
// broker does not keep a record per device for every rollout ever.
func (d *Device) records(s *DeviceStatus) (send map[string][]byte, clear []string) {
	if s.Desired == "" || s.Wave == "" || !validSegment(s.Desired) || !validSegment(s.Wave) {
		return nil, nil
	}
	r := recordOf(s)
	send = map[string][]byte{}
	topics := []string{RecordTopic(d.opts.Fleet, s.Desired, s.Wave, d.node)}
	if r.Failed {
		topics = append(topics, FailedTopic(d.opts.Fleet, s.Desired, d.node))
	}
	p, _ := json.Marshal(r)
	for _, t := range topics {
		if string(d.recs[t]) != string(p) {
			send[t] = p
			d.recs[t] = p
		}
	}
	old := d.recTopic[s.Desired]
	d.recTopic[s.Desired] = topics
	if old == nil {
		d.recOrder = append(d.recOrder, s.Desired)
	}
	for _, t := range old { // a record the device no longer holds (its wave changed with its labels)
		if !slices.Contains(topics, t) {
			clear = append(clear, t)
			delete(d.recs, t)
		}
	}
	for len(d.recOrder) > 2 {
		for _, t := range d.recTopic[d.recOrder[0]] {
			clear = append(clear, t)
			delete(d.recs, t)
		}
		delete(d.recTopic, d.recOrder[0])
		d.recOrder = d.recOrder[1:]
	}
	return send, clear
}

// Follow tells the device which rollout its decision needs: the records
// of the devices of the waves named in earlier (the waves before its
// own) and of the devices that failed, for the revision commit, with
// their presence flags. commit "" follows nothing (the device is not
// waiting for a rollout). It returns what arrived so far, as reports for
// rollout.Decide, and whether it is complete: every retained record of
// the followed topics has arrived since the interest was set and the
// connection was last made. A device that follows no earlier wave and
// has no connection is complete: nothing will come.
//
// A report whose presence flag has not arrived yet counts as online, so
// it holds its wave up rather than being passed over.
func (d *Device) Follow(commit string, earlier []string) ([]rollout.Report, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fol.reset(commit, earlier) {
		d.ring()
	}
	if commit == "" {
		return nil, true
	}
	complete := d.fol.synced || len(earlier) == 0 && !d.client.IsConnectionOpen()
	return d.fol.reports(), complete
}

// follow keeps the subscriptions in line with what Follow asked for,
// until Close: it subscribes to the new topics, unsubscribes from the
// old ones, and after a change publishes the sync marker until it comes
// back, which says every retained record of the topics arrived.
func (d *Device) follow() {
	var resync <-chan time.Time
	for {
		select {
		case <-d.done:
			return
		case <-d.bell:
		case <-resync:
		}
		resync = nil
		if !d.client.IsConnectionOpen() {
			continue // onConnect rings again
		}
		d.mu.Lock()
		add, drop, marker := d.fol.plan(d.opts.Fleet, d.syncT)
		d.mu.Unlock()
		if len(drop) > 0 {
			if err := wait(context.Background(), d.client.Unsubscribe(drop...), d.opts.ConnectTimeout); err != nil {
				d.log.Warn("cannot unsubscribe from a finished rollout", "error", err)
			}
		}
		if len(add) > 0 {
			filters := make(map[string]byte, len(add))
			for _, t := range add {
				filters[t] = 1
			}
			if err := wait(context.Background(), d.client.SubscribeMultiple(filters, d.handle), d.opts.ConnectTimeout); err != nil {
				d.log.Warn("cannot follow the rollout's status yet; trying again", "error", err)
				d.mu.Lock()
				d.fol.failedSubscribe(add)
				d.mu.Unlock()
				resync = time.After(d.opts.ConnectTimeout)
				continue
			}
		}
		if marker != "" {
			d.client.Publish(d.syncT, 1, false, marker)
			resync = time.After(d.opts.ConnectTimeout) // published again unless it came back
		}
	}
}

// handle takes a message of a followed topic.
func (d *Device) handle(_ paho.Client, m paho.Message) {
	d.mu.Lock()
	changed, newNode := d.fol.handle(d.syncT, m.Topic(), m.Payload())
	d.mu.Unlock()
	if newNode {
		d.ring()
	}
	if changed {
		d.notify()
	}
}

// Close marks the device offline and disconnects. An orderly disconnect
// does not fire the Last Will, so the flag is set here.
func (d *Device) Close() {
	select {
	case <-d.done:
	default:
		close(d.done)
	}
	if d.client.IsConnectionOpen() {
		d.client.Publish(OnlineTopic(d.opts.Fleet, d.node), 1, true, "false").WaitTimeout(2 * time.Second)
	}
	d.client.Disconnect(250)
}

// Collect reads the status of every device of the fleet from the broker's
// retained messages and returns them sorted by node.
func Collect(ctx context.Context, opts Options) ([]DeviceStatus, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.ClientID == "" {
		opts.ClientID = fmt.Sprintf("berth-status-%d-%d", time.Now().UnixNano(), pid())
	}
	v := newView()
	syncT := "berth/" + opts.Fleet + "/_sync/" + opts.ClientID
	done := make(chan struct{})
	var once sync.Once
	client, err := opts.client(nil, nil)
	if err != nil {
		return nil, err
	}
	if err := wait(ctx, client.Connect(), opts.ConnectTimeout); err != nil {
		client.Disconnect(0)
		return nil, fmt.Errorf("mqtt: connect to %s: %w", redact(opts.URL), err)
	}
	defer client.Disconnect(250)
	filters := map[string]byte{
		"berth/" + opts.Fleet + "/+/status": 0,
		"berth/" + opts.Fleet + "/+/online": 0,
		syncT:                               0,
	}
	if err := wait(ctx, client.SubscribeMultiple(filters, func(_ paho.Client, m paho.Message) {
		if m.Topic() == syncT {
			once.Do(func() { close(done) })
			return
		}
		v.handle(m.Topic(), m.Payload())
	}), opts.ConnectTimeout); err != nil {
		return nil, fmt.Errorf("mqtt: subscribe: %w", err)
	}
	if err := wait(ctx, client.Publish(syncT, 1, false, "sync"), opts.ConnectTimeout); err != nil {
		return nil, fmt.Errorf("mqtt: publish: %w", err)
	}
	t := time.NewTimer(opts.ConnectTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, fmt.Errorf("mqtt: the broker did not deliver the fleet's status within %s", opts.ConnectTimeout)
	}
	return v.devices(), nil
}

func sortByNode(ds []DeviceStatus) {
	sort.Slice(ds, func(i, j int) bool { return ds[i].Node < ds[j].Node })
}
