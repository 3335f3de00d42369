// Cluster (admin): members, and join, leave and remove (POST /join, POST /leave,
// DELETE /cluster/members/{id}).  With a lower role the page shows the members only.

import { api } from "../api.js";
import { badge, h, replace, table } from "../dom.js";

const POLL_MS = 3000;

export async function render(root, ctx) {
  const members = h("div", { id: "cluster-members" });
  const admin = ctx.can("admin");
  const join = h("form", { id: "join-form", class: "filters" },
    h("label", {}, "Node id ", h("input", { name: "node_id", required: true, placeholder: "node-4" })),
    h("label", {}, "Raft address ", h("input", { name: "address", required: true, placeholder: "10.0.0.4:7000" })),
    h("label", {}, "HTTP address ", h("input", { name: "http_address", placeholder: "10.0.0.4:8080" })),
    h("button", { type: "submit" }, "Add as learner"));
  join.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries([...new FormData(join)].filter(([, v]) => v));
    try {
      const answer = await api.join(data);
      ctx.notify(`${answer.node_id} joins as a ${answer.suffrage}`);
      join.reset();
    } catch (error) {
      ctx.notify(`Join: ${error.message}`, "error");
    }
  });
  replace(root, h("h1", {}, "Cluster"),
    admin ? null : h("p", { class: "muted" }, "Membership changes need an admin token (or the cluster secret)."),
    members,
    admin ? [h("h2", {}, "Add a node"), h("p", { class: "muted small" }, "It joins as a learner; the leader makes it a voter once it has caught up."), join] : null);
  const refresh = async () => {
    const view = await api.cluster();
    if (!ctx.current()) return;
    const rows = view.members.map((m) => h("tr", {},
      h("td", {}, m.node_id), h("td", {}, badge(m.node_id === view.leader_id ? "leader" : m.suffrage)),
      h("td", {}, m.raft_address), h("td", {}, m.http_address || "—"), h("td", {}, m.match_index ?? "—"),
      h("td", {}, admin ? h("button", { type: "button", class: "danger", onclick: async () => {
        const self = m.node_id === view.node_id;
        if (!confirm(self ? `Make ${m.node_id} (this node) leave the cluster?` : `Remove ${m.node_id} from the cluster?`)) return;
        try {
          if (self) await api.leave(); else await api.removeMember(m.node_id);
          ctx.notify(`${m.node_id} removed`);
        } catch (error) {
          ctx.notify(`Remove ${m.node_id}: ${error.message}`, "error");
        }
      } }, m.node_id === view.node_id ? "Leave" : "Remove") : null)));
    replace(members, table(["member", "role", "Raft", "HTTP", "match index", ""], rows));
  };
  await ctx.every(POLL_MS, refresh);
}
