// SSRF edges at admission: every forbidden range is denied by literal address even with
// `allow: ["*"]`, names of loopback and metadata services (also with a final dot),
// pattern matching at label boundaries, bracketed IPv6 patterns, user-only credentials,
// and URLs too long for the node cache's request line.
import { describe, expect, it } from "vitest";
import { checkOriginUrl, forbiddenAddress, type OriginRules } from "../../src/shared/origin.js";
import { MAX_ENCODED_URL_BYTES, strictEncode } from "../../src/shared/protocol.js";
import { admit, files, makePod, testPolicy } from "../support/pod-fixtures.js";

const anyHost = testPolicy("origins: {allow: ['*']}");
const rules = (allow: string[], allowPrivate: string[] = []): OriginRules => ({ allow, schemes: ["https", "http"], allowPrivate });

function denial(url: string, policy = anyHost): string {
  const { decision } = admit(makePod(files(`${url}#name=x.bin`)), policy);
  expect(decision.action, url).toBe("deny");
  return decision.action === "deny" ? decision.message : "";
}

/** One literal per forbidden range, as written in a URL, with the range the message names. */
const FORBIDDEN_LITERALS: Array<[string, string]> = [
  ["0.0.0.0", "unspecified"],
  ["[::]", "unspecified"],
  ["100.64.0.1", "carrierGradeNat"],
  ["100.100.100.200", "carrierGradeNat"], // Alibaba Cloud metadata
  ["[fd00::1]", "uniqueLocal"],
  ["[fd00:ec2::254]", "uniqueLocal"], // AWS IMDS over IPv6
  ["224.0.0.1", "multicast"],
  ["[ff02::1]", "multicast"],
  ["192.0.2.1", "reserved"], // documentation (TEST-NET-1)
  ["[2001:db8::1]", "reserved"], // documentation
  ["[64:ff9b::a9fe:a9fe]", "rfc6052"], // NAT64 of 169.254.169.254
  ["[2002:a9fe:a9fe::1]", "6to4"],
  ["[::127.0.0.1]", "ipv4Compatible"], // ::/96, IPv4-compatible: ipaddr.js calls it unicast
  ["[::a9fe:a9fe]", "ipv4Compatible"],
];

describe("forbidden address ranges at admission, even with allow: ['*']", () => {
  it.each(FORBIDDEN_LITERALS)("denies http://%s/ (%s)", (host, range) => {
    expect(denial(`http://${host}/`)).toContain(`is ${range}, not public unicast`);
  });

  it("treats a range ipaddr.js names but the code never listed (discard, 100::/64) as forbidden", () => {
    expect(forbiddenAddress("100::1", rules(["*"]))).toContain("is discard");
  });

  it("admits public unicast, also IPv4-mapped IPv6 of a public address", () => {
    expect(forbiddenAddress("8.8.8.8", rules(["*"]))).toBeNull();
    expect(forbiddenAddress("2606:4700::1111", rules(["*"]))).toBeNull();
    expect(checkOriginUrl(new URL("http://[::ffff:8.8.8.8]/"), rules(["*"]))).toBeNull();
  });

  it("admits a forbidden range the policy names in allowPrivate", () => {
    expect(checkOriginUrl(new URL("http://[::127.0.0.1]/"), rules(["*"], ["::/96"]))).toBeNull();
  });
});

describe("loopback and metadata names", () => {
  it.each(["localhost", "api.localhost", "metadata", "metadata.google.internal"])("denies %s, also with a final dot", (host) => {
    expect(denial(`http://${host}/`)).toMatch(/is loopback|cloud metadata service/);
    expect(denial(`http://${host}./`)).toMatch(/is loopback|cloud metadata service/);
  });

  it("matches patterns and allowPrivate names without the final dot", () => {
    expect(checkOriginUrl(new URL("https://models.example.com./a"), rules(["models.example.com"]))).toBeNull();
    expect(checkOriginUrl(new URL("https://models.example.com/a"), rules(["models.example.com."]))).toBeNull();
    expect(checkOriginUrl(new URL("http://localhost./a"), rules(["*"], ["localhost"]))).toBeNull();
  });
});

describe("host patterns", () => {
  it("*.example.com matches subdomains, not evilexample.com nor example.com itself", () => {
    const r = rules(["*.example.com"]);
    expect(checkOriginUrl(new URL("https://a.example.com/x"), r)).toBeNull();
    expect(checkOriginUrl(new URL("https://evilexample.com/x"), r)).toContain('host "evilexample.com" is not in the policy');
    expect(checkOriginUrl(new URL("https://example.com/x"), r)).toContain("is not in the policy");
  });

  it("a bracketed IPv6 pattern matches that address, in any spelling", () => {
    const r = rules(["[2606:4700::1111]"]);
    expect(checkOriginUrl(new URL("http://[2606:4700::1111]/x"), r)).toBeNull();
    expect(checkOriginUrl(new URL("http://[2606:4700:0:0::1111]/x"), r)).toBeNull();
    expect(checkOriginUrl(new URL("http://[2606:4700::1112]/x"), r)).toContain("is not in the policy");
    expect(checkOriginUrl(new URL("http://[2606:4700::1111]/x"), rules(["2606:4700:0::1111"]))).toBeNull();
  });

  it("a bracketed allowPrivate entry allows that private address", () => {
    expect(checkOriginUrl(new URL("http://[fd00::5]/x"), rules(["*"], ["[fd00::5]"]))).toBeNull();
  });
});

describe("credentials and length", () => {
  it("refuses a user name without a password (https://user@host/)", () => {
    expect(denial("https://user@models.example.com/a")).toContain("credentials in the URL are not allowed");
  });

  it("denies a URL longer than the node cache's request line allows, saying the limit", () => {
    const long = `https://models.example.com/${"a".repeat(MAX_ENCODED_URL_BYTES)}`;
    const message = denial(long);
    expect(message).toContain(`the limit is ${MAX_ENCODED_URL_BYTES}`);
    expect(message).toContain("percent-encoded");
  });

  it("counts the URL percent-encoded: a 6 kB URL of percent-escapes is too long for the cache's request line", () => {
    const url = `https://models.example.com/f?q=${"%2F".repeat(2000)}`;
    expect(url.length).toBeLessThan(MAX_ENCODED_URL_BYTES);
    expect(strictEncode(url).length).toBeGreaterThan(MAX_ENCODED_URL_BYTES);
    expect(denial(url)).toContain(`${strictEncode(url).length} characters once percent-encoded`);
  });

  it("admits a URL just under the limit", () => {
    const base = "https://models.example.com/";
    const url = base + "a".repeat(MAX_ENCODED_URL_BYTES - strictEncode(base).length);
    expect(strictEncode(url).length).toBe(MAX_ENCODED_URL_BYTES);
    expect(admit(makePod(files(`${url}#name=x.bin`)), anyHost).decision.action).toBe("mutate");
  });
});
