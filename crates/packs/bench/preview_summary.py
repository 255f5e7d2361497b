#!/usr/bin/env python3
"""One line per `policyhub pack preview -o json` document on stdin, and its top 3 blocked edges."""
import json
import sys

p = json.load(sys.stdin)
b, a = p["before"], p["after"]
print("%s: %d policies, blocks %d edges / %d of %d flows; flows governed %.1f%% -> %.1f%%; "
      "workloads %d/%d -> %d/%d" % (
          p["pack"], p["policies"], p["blockedEdges"], p["blockedFlows"], p["observedFlows"],
          b["flowShare"] * 100, a["flowShare"] * 100, b["workloadsGoverned"], b["workloads"],
          a["workloadsGoverned"], a["workloads"]))
for e in p["topBlocked"][:3]:
    print("    %d %s -> %s %s/%d (%s)" % (e["flows"], e["source"], e["destination"],
                                        e["protocol"], e["port"], e.get("policy")))
