package schema

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"cuelang.org/go/cue"

	"berth.dev/berth/reconcile"
)

// kinds lists the kinds berth accepts, by kind name. The apiVersion is
// checked by the schema so a wrong one gets a message naming the right one.
var kinds = map[string]kindInfo{
	"Pod": {
		definition: "#Pod",
		decode: func(v cue.Value, obj *reconcile.Object) error {
			obj.Pod = new(reconcile.PodSpec)
			return decodeField(v, "spec", obj.Pod)
		},
		check: func(x *validator, obj *reconcile.Object) {
			checkPodSpec(x, podContext{path: sel("spec"), kind: "Pod"}, obj.Pod)
		},
	},
	"Deployment": {
		definition: "#Deployment",
		decode: func(v cue.Value, obj *reconcile.Object) error {
			obj.Deployment = new(reconcile.DeploymentSpec)
			return decodeField(v, "spec", obj.Deployment)
		},
		check: func(x *validator, obj *reconcile.Object) {
			s := obj.Deployment
			checkReplicas(x, sel("spec", "replicas"), s.Replicas)
			checkTemplate(x, obj.Kind, s.Selector, &s.Template, nil, true)
		},
	},
	"ReplicaSet": {
		definition: "#ReplicaSet",
		decode: func(v cue.Value, obj *reconcile.Object) error {
			obj.ReplicaSet = new(reconcile.ReplicaSetSpec)
			return decodeField(v, "spec", obj.ReplicaSet)
		},
		check: func(x *validator, obj *reconcile.Object) {
			s := obj.ReplicaSet
			checkReplicas(x, sel("spec", "replicas"), s.Replicas)
			checkTemplate(x, obj.Kind, s.Selector, &s.Template, nil, true)
		},
	},
	"DaemonSet": {
		definition: "#DaemonSet",
		decode: func(v cue.Value, obj *reconcile.Object) error {
			obj.DaemonSet = new(reconcile.DaemonSetSpec)
			return decodeField(v, "spec", obj.DaemonSet)
		},
		check: func(x *validator, obj *reconcile.Object) {
			s := obj.DaemonSet
			checkTemplate(x, obj.Kind, s.Selector, &s.Template, nil, true)
		},
	},
	"StatefulSet": {
		definition: "#StatefulSet",
		decode: func(v cue.Value, obj *reconcile.Object) error {
			obj.StatefulSet = new(reconcile.StatefulSetSpec)
			return decodeField(v, "spec", obj.StatefulSet)
		},
		check: func(x *validator, obj *reconcile.Object) {
			s := obj.StatefulSet
			checkReplicas(x, sel("spec", "replicas"), s.Replicas)
			claims := map[string]string{}
			for i, c := range s.VolumeClaimTemplates {
				p := pathString(sel("spec", "volumeClaimTemplates", i))
				if prev, dup := claims[c.Metadata.Name]; dup {
					x.reportAt(sel("spec", "volumeClaimTemplates", i, "metadata", "name"),
						fmt.Sprintf("claim template name %q is already used by %s", c.Metadata.Name, prev))
					continue
				}
				claims[c.Metadata.Name] = p
			}
			checkTemplate(x, obj.Kind, s.Selector, &s.Template, claims, true)
		},
	},
	"Job": {
		definition: "#Job",
		decode: func(v cue.Value, obj *reconcile.Object) error {
			obj.Job = new(reconcile.JobSpec)
			return decodeField(v, "spec", obj.Job)
		},
		check: func(x *validator, obj *reconcile.Object) {
			checkJob(x, sel("spec"), obj.Job)
		},
	},
	"CronJob": {
		definition: "#CronJob",
		decode: func(v cue.Value, obj *reconcile.Object) error {
			obj.CronJob = new(reconcile.CronJobSpec)
			return decodeField(v, "spec", obj.CronJob)
		},
		check: func(x *validator, obj *reconcile.Object) {
			checkSchedule(x, obj.CronJob.Schedule, obj.CronJob.TimeZone)
			checkJob(x, sel("spec", "jobTemplate", "spec"), &obj.CronJob.JobTemplate.Spec)
		},
	},
	"ConfigMap": {
		definition: "#ConfigMap",
		decode:     decodeConfigMap,
		check: func(x *validator, obj *reconcile.Object) {
			n := 0
			for k, v := range obj.ConfigMap.Data {
				n += len(k) + len(v)
			}
			for k, v := range obj.ConfigMap.BinaryData {
				n += len(k) + len(v)
			}
			checkDataSize(x, n)
		},
	},
	"Secret": {
		definition: "#Secret",
		decode:     decodeSecret,
		check: func(x *validator, obj *reconcile.Object) {
			n := 0
			for k, v := range obj.Secret.Data {
				n += len(k) + len(v)
			}
			checkDataSize(x, n)
		},
	},
}

// kindInfo describes one supported kind.
type kindInfo struct {
	// definition is the schema definition validating the kind.
	definition string
	// decode fills the kind-specific part of obj from the validated value.
	// An error it returns is a *fieldError or a plain error.
	decode func(v cue.Value, obj *reconcile.Object) error
	// check runs the cross-field rules CUE does not express well.
	check func(x *validator, obj *reconcile.Object)
}

// fieldError is a decoding problem at a path of the object. Its message
// never holds a Secret's value.
type fieldError struct {
	path []cue.Selector
	msg  string
}

func (e *fieldError) Error() string { return pathString(e.path) + ": " + e.msg }

// decodeField decodes the field name of v into out. It goes through JSON so
// that the model's own decoders run (IntOrString) and numbers given for
// quantities ("cpu: 2") become the strings the model holds.
func decodeField(v cue.Value, name string, out any) error {
	b, err := v.LookupPath(cue.MakePath(cue.Str(name))).MarshalJSON()
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	quantitiesToStrings(raw, "")
	dropAccepted(raw, name)
	b, err = json.Marshal(raw)
	if err != nil {
		return err
	}
	dec = json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(out)
}

// quantityFields are fields holding a quantity; limits and requests hold
// maps of them.
var quantityFields = map[string]bool{"sizeLimit": true, "divisor": true}

// quantitiesToStrings turns JSON numbers that are quantities into strings,
// in place. parent is the name of the field holding v.
func quantitiesToStrings(v any, parent string) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if n, ok := e.(json.Number); ok && (quantityFields[k] || parent == "limits" || parent == "requests") {
				v[k] = n.String()
				continue
			}
			quantitiesToStrings(e, k)
		}
	case []any:
		for _, e := range v {
			quantitiesToStrings(e, "")
		}
	}
}

// acceptedFields are fields the schema accepts that decide nothing on a
// host, by the name of the struct holding them; the model has no place for
// them, so they are dropped before decoding.
var acceptedFields = map[string][]string{
	"metadata": {"creationTimestamp"},
	"affinity": {"podAffinity", "podAntiAffinity"},
	"spec":     {"serviceAccountName", "serviceAccount", "automountServiceAccountToken"},
}

// dropAccepted deletes acceptedFields from v, in place. parent is the name
// of the field holding v.
func dropAccepted(v any, parent string) {
	switch v := v.(type) {
	case map[string]any:
		for _, f := range acceptedFields[parent] {
			delete(v, f)
		}
		for k, e := range v {
			dropAccepted(e, k)
		}
	case []any:
		for _, e := range v {
			dropAccepted(e, "")
		}
	}
}

// stringMap decodes the string map at field name of v, if present.
func stringMap(v cue.Value, name string) (map[string]string, error) {
	f := v.LookupPath(cue.MakePath(cue.Str(name)))
	if !f.Exists() {
		return nil, nil
	}
	var m map[string]string
	if err := f.Decode(&m); err != nil {
		return nil, &fieldError{sel(name), "must be a map of strings"}
	}
	return m, nil
}

func decodeConfigMap(v cue.Value, obj *reconcile.Object) error {
	cm := &reconcile.ConfigMapData{}
	var err error
	if cm.Data, err = stringMap(v, "data"); err != nil {
		return err
	}
	bin, err := stringMap(v, "binaryData")
	if err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(bin)) {
		b, err := base64.StdEncoding.DecodeString(bin[k])
		if err != nil {
			return &fieldError{sel("binaryData", k), "must be base64"}
		}
		if _, dup := cm.Data[k]; dup {
			return &fieldError{sel("binaryData", k), fmt.Sprintf("key %q is also in data", k)}
		}
		if cm.BinaryData == nil {
			cm.BinaryData = map[string][]byte{}
		}
		cm.BinaryData[k] = b
	}
	if im := v.LookupPath(cue.ParsePath("immutable")); im.Exists() {
		b, _ := im.Bool()
		cm.Immutable = &b
	}
	obj.ConfigMap = cm
	return nil
}

// decodeSecret decodes a Secret: data from base64, stringData merged in
// (stringData wins). No error names a value.
func decodeSecret(v cue.Value, obj *reconcile.Object) error {
	sec := &reconcile.SecretData{Type: "Opaque"}
	if t, err := v.LookupPath(cue.ParsePath("type")).String(); err == nil {
		sec.Type = t
	}
	data, err := stringMap(v, "data")
	if err != nil {
		return err
	}
	str, err := stringMap(v, "stringData")
	if err != nil {
		return err
	}
	if len(data)+len(str) > 0 {
		sec.Data = map[string][]byte{}
	}
	for _, k := range slices.Sorted(maps.Keys(data)) {
		b, err := base64.StdEncoding.DecodeString(data[k])
		if err != nil {
			return &fieldError{sel("data", k), "must be base64 (use stringData for plain text)"}
		}
		sec.Data[k] = b
	}
	for k, s := range str {
		sec.Data[k] = []byte(s)
	}
	if im := v.LookupPath(cue.ParsePath("immutable")); im.Exists() {
		b, _ := im.Bool()
		sec.Immutable = &b
	}
	obj.Secret = sec
	return nil
}
