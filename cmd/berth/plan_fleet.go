package main

import (
	"context"

	"berth.dev/berth/fleet"
	"berth.dev/berth/preview"
	"berth.dev/berth/source"
)

// planFleet previews head against base on every device of the inventory
// and prints the devices grouped by effect.
func (c *cli) planFleet(ctx context.Context, baseRev, headRev *source.Revision, baseName, headName string) error {
	inv, err := fleet.ReadInventory(c.preview.inventory)
	if err != nil {
		return err
	}
	r, err := fleet.Plan(ctx,
		fleet.Revision{Name: baseName, Commit: baseRev.Commit, Files: baseRev.Files},
		fleet.Revision{Name: headName, Commit: headRev.Commit, Files: headRev.Files},
		inv, fleet.Options{Schema: c.schemaOptions(), Expand: preview.ExpandOptions{StateDir: c.stateDir}})
	if err != nil {
		return err
	}
	switch c.output {
	case "json":
		err = fleet.WriteJSON(c.stdout, r)
	case "markdown":
		err = fleet.WriteMarkdown(c.stdout, r, preview.MarkdownOptions{})
	default:
		err = fleet.WriteText(c.stdout, r, preview.TextOptions{Color: c.colorOutput()})
	}
	if err != nil {
		return err
	}
	return exitFor(r.ExitCode())
}
