package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"berth.dev/berth/fleet/mqtt"
)

// mqttFlags say how to reach the fleet's MQTT broker (berth agent and
// berth fleet status).
type mqttFlags struct {
	url          string
	fleet        string
	ca           string
	cert, key    string
	username     string
	passwordFile string
}

func (m *mqttFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.url, "mqtt", "", "MQTT broker for the fleet's device status: mqtt://host:1883 or mqtts://host:8883")
	fs.StringVar(&m.fleet, "fleet", mqtt.DefaultFleet, "fleet name: the topic segment after berth/")
	fs.StringVar(&m.ca, "mqtt-ca", "", "CA certificate (PEM) that signed the broker's certificate (default: the system's roots)")
	fs.StringVar(&m.cert, "mqtt-cert", "", "client certificate (PEM) for the broker")
	fs.StringVar(&m.key, "mqtt-key", "", "key (PEM) of the client certificate")
	fs.StringVar(&m.username, "mqtt-username", "", "username for the broker")
	fs.StringVar(&m.passwordFile, "mqtt-password-file", "", "file holding the broker password (else BERTH_MQTT_PASSWORD)")
}

// options are the broker options; the password is read from its file or
// from BERTH_MQTT_PASSWORD, never from the command line.
func (m *mqttFlags) options(c *cli) (mqtt.Options, error) {
	o := mqtt.Options{URL: m.url, Fleet: m.fleet, CAFile: m.ca, CertFile: m.cert, KeyFile: m.key,
		Username: m.username, Password: os.Getenv("BERTH_MQTT_PASSWORD"), Logger: c.log}
	if m.passwordFile != "" {
		b, err := os.ReadFile(m.passwordFile)
		if err != nil {
			return o, fmt.Errorf("--mqtt-password-file: %w", err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
	}
	return o, o.Validate()
}

func fleetCommand() command {
	var m mqttFlags
	var timeout time.Duration
	return command{
		name: "fleet", args: "status --mqtt URL",
		summary: "show the fleet's devices as they report on MQTT: per revision and wave, healthy, failed, pending and offline devices",
		flags: func(fs *flag.FlagSet, c *cli) {
			m.register(fs)
			fs.StringVar(&c.output, "o", "text", "output format: text or json")
			fs.DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the broker")
		},
		run: func(ctx context.Context, c *cli, args []string) error {
			if len(args) != 1 || args[0] != "status" {
				return errors.New("usage: berth fleet status --mqtt URL")
			}
			if err := checkOutput(c.output); err != nil {
				return err
			}
			if m.url == "" {
				return errors.New("--mqtt is required: the broker the fleet's agents publish to")
			}
			opts, err := m.options(c)
			if err != nil {
				return err
			}
			opts.ConnectTimeout = timeout
			ds, err := mqtt.Collect(ctx, opts)
			if err != nil {
				return err
			}
			s := mqtt.Summarize(opts.Fleet, ds)
			if c.output == "json" {
				return mqtt.WriteJSON(c.stdout, s)
			}
			return mqtt.WriteText(c.stdout, s)
		},
	}
}
