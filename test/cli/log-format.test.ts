// The text log format (--log-format text): one readable line per event, whatever the
// message and fields hold; a line that is not pino's JSON passes through.
import { describe, expect, it } from "vitest";
import { formatText } from "../../src/shared/log.js";

describe("formatText", () => {
  it("time, level, component: message, then key=value fields (strings quoted only when needed)", () => {
    const line = JSON.stringify({ level: "warn", time: "2026-12-01T10:00:00.000Z", app: "cache-io", component: "cache", msg: "origin attempt failed; retrying", err: "socket hang up", attempt: 2, url: "https://a.example/x" });
    expect(formatText(line)).toBe('2026-12-01T10:00:00.000Z WARN  cache: origin attempt failed; retrying err="socket hang up" attempt=2 url=https://a.example/x\n');
  });

  it("keeps one event on one line: line breaks in the message and in fields are escaped", () => {
    const line = JSON.stringify({ level: "error", time: "t", component: "policy", msg: "policy p.yaml is invalid:\n  cache.port: expected number", errors: ["a\nb", "c"] });
    const out = formatText(line);
    expect(out.split("\n")).toEqual(['t ERROR policy: policy p.yaml is invalid:\\n  cache.port: expected number errors=["a\\nb","c"]', ""]);
  });

  it("passes a non-JSON line through, with a newline", () => {
    expect(formatText("not json")).toBe("not json\n");
  });
});
