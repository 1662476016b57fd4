package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	stdhtml "html"
	"io"
	"sort"
	"strings"

	"berth.dev/berth/preview"
)

// maxListed is how many device names a group lists before "and N more".
const maxListed = 20

// WriteJSON prints r as indented JSON, with hasChanges and failed.
func WriteJSON(w io.Writer, r *Report) error {
	out := struct {
		*Report
		HasChanges bool `json:"hasChanges"`
		Failed     bool `json:"failed"`
	}{r, r.HasChanges(), r.Failed > 0}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// Headline is the one-sentence summary of r: "3 pods replaced on 120 of
// 500 devices", with failures first.
func (r *Report) Headline() string {
	var parts []string
	if r.Failed > 0 {
		parts = append(parts, fmt.Sprintf("the head revision fails on %d of %d devices", r.Failed, r.Devices))
	}
	if r.Affected == 0 {
		if r.Failed == 0 {
			return fmt.Sprintf("no changes on %d devices", r.Devices)
		}
		return parts[0]
	}
	var pods []string
	for _, x := range []struct {
		n    int
		verb string
	}{{r.Totals.Create, "created"}, {r.Totals.Replace, "replaced"}, {r.Totals.Delete, "deleted"}} {
		if x.n > 0 {
			pods = append(pods, fmt.Sprintf("%d %s", x.n, x.verb))
		}
	}
	parts = append(parts, fmt.Sprintf("%d of %d devices change (pods %s)", r.Affected, r.Devices, strings.Join(pods, ", ")))
	return strings.Join(parts, "; ")
}

// Title names a group: its number, devices and shared labels.
func (g *Group) Title(n int) string {
	s := fmt.Sprintf("group %d: %s", n, devices(len(g.Devices)))
	if l := labelText(g.Labels); l != "" {
		s += " (" + l + ")"
	}
	return s
}

// Effect says what the change does on the group's devices.
func (g *Group) Effect() string {
	switch {
	case g.Failed:
		return "head revision fails"
	case g.Counts.Changed() == 0:
		return "no changes" + waitingEffect(g)
	}
	var parts []string
	for _, x := range []struct {
		n    int
		verb string
	}{{g.Counts.Create, "created"}, {g.Counts.Replace, "replaced"}, {g.Counts.Delete, "deleted"}} {
		if x.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %s", pods(x.n), x.verb))
		}
	}
	return strings.Join(parts, ", ") + " per device" + waitingEffect(g)
}

func devices(n int) string {
	if n == 1 {
		return "1 device"
	}
	return fmt.Sprintf("%d devices", n)
}

func pods(n int) string {
	if n == 1 {
		return "1 pod"
	}
	return fmt.Sprintf("%d pods", n)
}

func labelText(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ", ")
}

func deviceList(names []string) string {
	if len(names) <= maxListed {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:maxListed], ", ") + fmt.Sprintf(" and %d more", len(names)-maxListed)
}

// WriteText prints r for a terminal: the headline, then each group with
// its devices, problems or workload effects and pod changes.
func WriteText(w io.Writer, r *Report, opts preview.TextOptions) error {
	var b bytes.Buffer
	paint := preview.Painter(opts.Color)
	fmt.Fprintf(&b, "plan %s → %s on %s\n", r.Base, r.Head, devices(r.Devices))
	fmt.Fprintf(&b, "%s\n", r.Headline())
	for _, p := range r.PolicyProblems {
		fmt.Fprintf(&b, "rollout policy: %s\n", p)
	}
	if len(r.Waves) > 0 {
		b.WriteString("\nwaves:\n")
		for i := range r.Waves {
			fmt.Fprintf(&b, "  %s\n", r.Waves[i].Line())
		}
	}
	for i := range r.Groups {
		g := &r.Groups[i]
		fmt.Fprintf(&b, "\n%s: %s\n", g.Title(i+1), g.Effect())
		fmt.Fprintf(&b, "  devices: %s\n", deviceList(g.Devices))
		p := g.Plan
		for _, d := range p.Diagnostics {
			fmt.Fprintf(&b, "  %s\n", d)
		}
		if p.Error != "" {
			fmt.Fprintf(&b, "  error: %s\n", p.Error)
		}
		if g.Failed {
			continue
		}
		if p.BaseError != "" {
			fmt.Fprintf(&b, "  warning: %s\n", p.BaseError)
		}
		for _, wl := range p.Workloads {
			preview.WriteTextWorkload(&b, wl, paint, "  ")
		}
		for _, c := range p.Changes {
			preview.WriteTextChange(&b, c, paint, "  ")
		}
		for _, w := range p.Waiting {
			fmt.Fprintf(&b, "  %s\n", w)
		}
	}
	writeSecretsText(&b, r)
	fmt.Fprintf(&b, "\npods over all devices: %s\n", r.Totals)
	_, err := w.Write(b.Bytes())
	return err
}

// WriteMarkdown prints r for a pull-request comment: the headline, the
// groups where the head revision fails with their problems, a table of
// the groups, and one collapsible section per group.
func WriteMarkdown(w io.Writer, r *Report, opts preview.MarkdownOptions) error {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = preview.DefaultMaxMarkdown
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "### berth plan on %s: %s → %s\n\n", devices(r.Devices), preview.MarkdownRevision(r.Base), preview.MarkdownRevision(r.Head))
	fmt.Fprintf(&b, "**%s.**\n\n", preview.Escape(upperFirst(r.Headline())))
	for i := range r.Groups {
		g := &r.Groups[i]
		if !g.Failed {
			continue
		}
		fmt.Fprintf(&b, "Group %d, %s", i+1, devices(len(g.Devices)))
		if l := labelText(g.Labels); l != "" {
			fmt.Fprintf(&b, " (%s)", preview.Code(l))
		}
		b.WriteString(":\n\n")
		preview.MarkdownProblems(&b, r.Head, g.Plan.Diagnostics, g.Plan.Error)
	}
	if len(r.PolicyProblems) > 0 {
		b.WriteString("The rollout policy is invalid:\n\n")
		for _, p := range r.PolicyProblems {
			fmt.Fprintf(&b, "- %s\n", preview.Code(p))
		}
		b.WriteString("\n")
	}
	if len(r.Waves) > 0 {
		b.WriteString("Rollout in waves:\n\n")
		for i := range r.Waves {
			fmt.Fprintf(&b, "%d. %s\n", i+1, preview.Escape(r.Waves[i].Line()))
		}
		b.WriteString("\n")
	}
	b.WriteString("| group | devices | labels | effect | create | replace | delete |\n|---:|---:|---|---|---:|---:|---:|\n")
	for i := range r.Groups {
		g := &r.Groups[i]
		l := labelText(g.Labels)
		if l != "" {
			l = preview.Code(l)
		}
		fmt.Fprintf(&b, "| %d | %d | %s | %s | %d | %d | %d |\n", i+1, len(g.Devices), l, preview.Escape(g.Effect()), g.Counts.Create, g.Counts.Replace, g.Counts.Delete)
	}
	fmt.Fprintf(&b, "| **all** | **%d** | | | **%d** | **%d** | **%d** |\n\n", r.Devices, r.Totals.Create, r.Totals.Replace, r.Totals.Delete)
	writeSecretsMarkdown(&b, r)

	var sections [][]byte
	for i := range r.Groups {
		g := &r.Groups[i]
		if g.Failed {
			continue
		}
		var s bytes.Buffer
		fmt.Fprintf(&s, "<details>\n<summary><b>Group %d</b>: %s", i+1, stdhtml.EscapeString(devices(len(g.Devices))))
		if l := labelText(g.Labels); l != "" {
			fmt.Fprintf(&s, " <code>%s</code>", stdhtml.EscapeString(l))
		}
		fmt.Fprintf(&s, ": %s</summary>\n\n", stdhtml.EscapeString(g.Effect()))
		fmt.Fprintf(&s, "Devices: %s\n\n", preview.Escape(deviceList(g.Devices)))
		preview.MarkdownBaseError(&s, g.Plan.BaseError)
		if len(g.Plan.Workloads) > 0 {
			preview.MarkdownWorkloads(&s, g.Plan.Workloads)
		}
		for _, c := range g.Plan.Changes {
			preview.MarkdownChange(&s, c)
		}
		for _, w := range g.Plan.Waiting {
			fmt.Fprintf(&s, "- %s\n", preview.Escape(w.String()))
		}
		s.WriteString("</details>\n\n")
		sections = append(sections, s.Bytes())
	}
	for i, s := range sections {
		if b.Len()+len(s) > opts.MaxBytes-200 {
			fmt.Fprintf(&b, "_%d more groups are not shown: the comment would be too long. Run `berth plan --inventory` for all of them._\n", len(sections)-i)
			break
		}
		b.Write(s)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
