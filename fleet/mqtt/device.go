package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/hashicorp/go-hclog"
)

// Device is an agent's connection to the broker: it publishes the
// device's status and follows the fleet's.
type Device struct {
	opts   Options
	node   string
	client paho.Client
	log    hclog.Logger
	view   *view
	syncT  string // this connection's sync marker topic

	mu     sync.Mutex
	last   []byte // latest status, sent again on every (re)connect
	synced bool   // the fleet's retained statuses have all arrived
	wake   func() // called when the fleet's status changes
}

// Connect connects the device node to the broker, with a Last Will that
// marks it offline, and follows the status of the fleet. It waits for the
// first connection up to the connect timeout; when the broker cannot be
// reached it returns the error, and the caller may run on without
// status. onChange, when set, is called (from the client's goroutine,
// quickly) whenever another device's status changes.
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
	d := &Device{opts: opts, node: node, log: opts.Logger.Named("mqtt"), view: newView(), wake: onChange,
		syncT: "berth/" + opts.Fleet + "/_sync/" + opts.ClientID}
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
			return d, nil
		}
		client.Disconnect(0)
		return nil, fmt.Errorf("mqtt: connect to %s: %w", redact(opts.URL), err)
	}
	return d, nil
}

// ConnectRetrying is Connect for a long-running agent: when the broker
// cannot be reached at first, it logs so and keeps trying in the
// background, instead of failing; the device runs without the fleet's
// status meanwhile (Synced is false).
func ConnectRetrying(ctx context.Context, opts Options, node string, onChange func()) (*Device, error) {
	opts.retry = true
	return Connect(ctx, opts, node, onChange)
}

// onConnect runs on every (re)connect: mark the device online, publish
// its latest status, and subscribe to the fleet again (the session is
// clean), followed by a marker whose arrival says every retained status
// came before it.
func (d *Device) onConnect(c paho.Client) {
	d.log.Info("connected to the broker", "broker", redact(d.opts.URL), "fleet", d.opts.Fleet)
	d.mu.Lock()
	d.synced = false
	last := d.last
	d.mu.Unlock()
	c.Publish(OnlineTopic(d.opts.Fleet, d.node), 1, true, "true")
	if last != nil {
		c.Publish(StatusTopic(d.opts.Fleet, d.node), 1, true, last)
	}
	handler := func(_ paho.Client, m paho.Message) {
		if m.Topic() == d.syncT {
			d.mu.Lock()
			d.synced = true
			d.mu.Unlock()
			d.notify()
			return
		}
		d.view.handle(m.Topic(), m.Payload())
		if d.Synced() {
			d.notify()
		}
	}
	filters := fleetFilters(d.opts.Fleet, d.syncT)
	tok := c.SubscribeMultiple(filters, handler)
	go d.sync(c, tok)
}

// sync waits for the subscription, then publishes the sync marker until
// it comes back (a loaded broker may drop a QoS 0 delivery), as long as
// the connection holds.
func (d *Device) sync(c paho.Client, tok paho.Token) {
	for !tok.WaitTimeout(d.opts.ConnectTimeout) {
		if !c.IsConnectionOpen() {
			return
		}
		d.log.Warn("the broker has not confirmed the fleet subscription yet; waiting")
	}
	if err := tok.Error(); err != nil {
		d.log.Warn("cannot follow the fleet's status", "error", err)
		return
	}
	for !d.Synced() && c.IsConnectionOpen() {
		c.Publish(d.syncT, 1, false, "sync")
		deadline := time.Now().Add(d.opts.ConnectTimeout)
		for !d.Synced() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func (d *Device) notify() {
	if d.wake != nil {
		d.wake()
	}
}

// Publish sends the device's status, retained. When the broker is not
// reachable it is kept and sent on reconnect.
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
	d.mu.Unlock()
	d.view.handle(StatusTopic(d.opts.Fleet, d.node), b)
	if !d.client.IsConnectionOpen() {
		return nil
	}
	tok := d.client.Publish(StatusTopic(d.opts.Fleet, d.node), 1, true, b)
	if !tok.WaitTimeout(d.opts.ConnectTimeout) {
		return fmt.Errorf("mqtt: publish status: no answer within %s", d.opts.ConnectTimeout)
	}
	return tok.Error()
}

// Synced reports whether the fleet's retained statuses have arrived
// since the last (re)connect, so Fleet is complete.
func (d *Device) Synced() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.synced
}

// Connected reports whether the connection is up.
func (d *Device) Connected() bool { return d.client.IsConnectionOpen() }

// Fleet returns every device's last status (this one's included), with
// Online from the presence flags, sorted by node.
func (d *Device) Fleet() []DeviceStatus { return d.view.devices() }

// Close marks the device offline and disconnects. An orderly disconnect
// does not fire the Last Will, so the flag is set here.
func (d *Device) Close() {
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
	filters := fleetFilters(opts.Fleet, syncT)
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

// fleetFilters are the subscriptions that follow a fleet, and the sync
// marker. They are QoS 0: every message of a fleet reaches every device,
// and acknowledging each one would double the broker's packets; a status
// missed while the connection drops is retained and arrives with the
// next subscription.
func fleetFilters(fleet, syncT string) map[string]byte {
	return map[string]byte{
		"berth/" + fleet + "/+/status": 0,
		"berth/" + fleet + "/+/online": 0,
		syncT:                          0,
	}
}
