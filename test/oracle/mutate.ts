// Seeded, token-level mutations of corpus statements for the oracle fuzzer. Each mutation
// returns new SQL or null when it does not apply. A mutation may produce invalid SQL; the
// oracle then only requires that both sides fail (or that the rewriter refuses).
import { TENANTS, TENANT_TABLES } from './facts.js'

import { type Tok, tokenize, up, type Rng, pick, splice, CLAUSE_END, whereClauses, isReadOnly, hasReturning, firstTenantTable } from './sql-tokens.js'
export { type Tok, tokenize, type Rng, mulberry32, pick, isReadOnly, hasReturning, mayBeNondeterministic } from './sql-tokens.js'

export interface MutationCtx {
  rng: Rng
  tenant: string
  /** Another param-less, read-only statement with the same result column types, for UNION ALL. */
  unionPartner?: () => string | null
}

export type Mutation = { name: string; apply: (sql: string, toks: Tok[], ctx: MutationCtx) => string | null }

function otherTenant(ctx: MutationCtx): string {
  return pick(
    ctx.rng,
    TENANTS.filter((t) => t !== ctx.tenant),
  )
}
const q = (s: string) => `'${s.replace(/'/g, "''")}'`

export const MUTATIONS: Mutation[] = [
  {
    name: 'drop-where',
    apply(sql, toks, { rng }) {
      const ws = whereClauses(sql, toks)
      if (!ws.length) return null
      const w = pick(rng, ws)
      return splice(sql, w.kw.start, w.end, '')
    },
  },
  {
    name: 'duplicate-where',
    apply(sql, toks, { rng }) {
      const ws = whereClauses(sql, toks)
      if (!ws.length) return null
      const w = pick(rng, ws)
      const cond = sql.slice(w.start, w.end)
      return splice(sql, w.start, w.end, `(${cond}) AND (${cond})`)
    },
  },
  {
    name: 'or-true',
    apply(sql, toks, { rng }) {
      const ws = whereClauses(sql, toks)
      if (!ws.length) return null
      const w = pick(rng, ws)
      return splice(
        sql,
        w.start,
        w.end,
        `${sql.slice(w.start, w.end)}
 OR true`,
      )
    },
  },
  {
    name: 'or-other-tenant',
    apply(sql, toks, ctx) {
      const ws = whereClauses(sql, toks).filter((w) => w.kw.depth === 0)
      const ft = firstTenantTable(toks)
      if (!ws.length || !ft) return null
      const w = ws[0]
      return splice(sql, w.start, w.end, `${sql.slice(w.start, w.end)} OR ${ft.qualifier}.${ft.column} = ${q(otherTenant(ctx))}`)
    },
  },
  {
    name: 'and-other-tenant',
    apply(sql, toks, ctx) {
      const ws = whereClauses(sql, toks).filter((w) => w.kw.depth === 0)
      const ft = firstTenantTable(toks)
      if (!ws.length || !ft) return null
      const w = ws[0]
      return splice(sql, w.start, w.end, `(${sql.slice(w.start, w.end)}) AND ${ft.qualifier}.${ft.column} IN (${q(otherTenant(ctx))}, ${q(ctx.tenant)})`)
    },
  },
  {
    name: 'swap-join',
    apply(sql, toks, { rng }) {
      const joins = toks
        .map((t, i) => ({ t, i }))
        .filter(({ t, i }) => up(t) === 'JOIN' && !['CROSS', 'NATURAL'].includes(up(toks[i - 1])) && up(toks[i + 1]) !== 'LATERAL')
      if (!joins.length) return null
      const { i } = pick(rng, joins)
      let s = i
      while (s > 0 && ['LEFT', 'RIGHT', 'FULL', 'INNER', 'OUTER'].includes(up(toks[s - 1]))) s--
      return splice(sql, toks[s].start, toks[i].end, pick(rng, ['JOIN', 'LEFT JOIN', 'RIGHT JOIN', 'FULL JOIN', 'LEFT OUTER JOIN']))
    },
  },
  {
    name: 'wrap-subquery',
    apply(sql, toks) {
      return isReadOnly(toks)
        ? `SELECT * FROM (${sql}
) AS fz_sub`
        : null
    },
  },
  {
    name: 'wrap-cte',
    apply(sql, toks) {
      if (isReadOnly(toks))
        return `WITH fz_cte AS (${sql}
) SELECT * FROM fz_cte`
      if (up(toks[0]) === 'WITH') return null
      return hasReturning(toks)
        ? `WITH fz_cte AS (${sql}
) SELECT * FROM fz_cte`
        : `WITH fz_cte AS (${sql}
) SELECT 1 AS done`
    },
  },
  {
    name: 'scalar-count',
    apply(sql, toks) {
      return isReadOnly(toks)
        ? `SELECT (SELECT count(*) FROM (${sql}
) s) AS n, (SELECT count(*) FROM tasks) AS all_tasks`
        : null
    },
  },
  {
    name: 'lateral-over-companies',
    apply(sql, toks) {
      return isReadOnly(toks)
        ? `SELECT c0.tenant_id AS c0_tenant, c0.id AS c0_id, fz.* FROM companies c0 CROSS JOIN LATERAL (${sql}
) fz WHERE c0.id <= 2`
        : null
    },
  },
  {
    name: 'left-join-foreign-rows',
    apply(sql, toks) {
      return isReadOnly(toks)
        ? `SELECT fz.*, u0.tenant_id AS u0_tenant FROM (${sql}
) fz LEFT JOIN users u0 ON u0.id = 1`
        : null
    },
  },
  {
    name: 'union-all',
    apply(sql, toks, ctx) {
      if (!isReadOnly(toks) || !ctx.unionPartner) return null
      const other = ctx.unionPartner()
      return other
        ? `(${sql}
) UNION ALL (${other}
)`
        : null
    },
  },
  {
    name: 'exists-gate',
    apply(sql, toks) {
      return isReadOnly(toks)
        ? `SELECT t0.id, t0.tenant_id FROM tasks t0 WHERE EXISTS (${sql}
) AND t0.id <= 3`
        : null
    },
  },
  {
    name: 'tenant-literal-swap',
    apply(sql, toks, ctx) {
      const other = otherTenant(ctx)
      const lits = toks.filter(
        (t) =>
          t.type === 'string' &&
          TENANTS.some((tn) => t.text.toLowerCase().includes(tn.replace(/'/g, "''")) || t.text.toLowerCase().includes(tn.replace(/[^a-z]/g, ''))),
      )
      if (lits.length) {
        const l = pick(ctx.rng, lits)
        let text = l.text
        for (const tn of TENANTS) {
          text = text
            .split(tn.replace(/'/g, "''"))
            .join(other.replace(/'/g, "''"))
            .split(tn.replace(/[^a-z]/g, ''))
            .join(other.replace(/[^a-z]/g, ''))
        }
        return splice(sql, l.start, l.end, text)
      }
      const cs = toks.findIndex((t) => up(t) === 'CURRENT_SETTING')
      if (cs >= 0) {
        let j = cs + 1
        while (j < toks.length && !(toks[j].text === ')' && toks[j].depth === toks[cs].depth)) j++
        return splice(sql, toks[cs].start, toks[j].end, q(other))
      }
      return null
    },
  },
  {
    name: 'insert-tenant-value',
    apply(sql, toks, ctx) {
      // INSERT INTO t (cols) VALUES (…), (…): add the tenant column with another tenant (or, 1 in 4, the session tenant).
      const ins = toks.findIndex((t) => up(t) === 'INSERT')
      if (ins < 0 || up(toks[ins + 1]) !== 'INTO') return null
      let j = ins + 2
      const parts: string[] = []
      while (toks[j] && (toks[j].type === 'word' || toks[j].type === 'qident') && up(toks[j]) !== 'AS') {
        parts.push(toks[j].type === 'qident' ? toks[j].text.slice(1, -1) : toks[j].text.toLowerCase())
        if (toks[j + 1]?.text === '.') j += 2
        else {
          j++
          break
        }
      }
      const key = parts.length === 1 ? `public.${parts[0]}` : parts.join('.')
      const col = TENANT_TABLES.get(key)
      if (!col) return null
      if (up(toks[j]) === 'AS') j += 2
      if (toks[j]?.text !== '(') return null
      const depth = toks[j].depth
      const close = toks.findIndex((t, k) => k > j && t.text === ')' && t.depth === depth)
      if (toks.slice(j, close).some((t) => t.text.replace(/"/g, '').toLowerCase() === col)) return null
      const values = toks.findIndex((t, k) => k > close && up(t) === 'VALUES' && t.depth === depth)
      if (values < 0) return null
      const value = ctx.rng() < 0.25 ? ctx.tenant : otherTenant(ctx)
      const edits: { at: number; text: string }[] = [{ at: toks[close].start, text: `, ${col}` }]
      for (let k = values + 1; k < toks.length; k++) {
        const t = toks[k]
        if (t.depth < depth || (t.depth === depth && t.type === 'word')) break
        if (t.text === '(' && t.depth === depth) {
          const rc = toks.findIndex((u, m) => m > k && u.text === ')' && u.depth === depth)
          edits.push({ at: toks[rc].start, text: `, ${q(value)}` })
          k = rc
        }
      }
      let out = sql
      for (const e of edits.sort((a, b) => b.at - a.at)) out = splice(out, e.at, e.at, e.text)
      return out
    },
  },
  {
    name: 'update-set-tenant',
    apply(sql, toks, ctx) {
      const upd = toks.findIndex((t, i) => up(t) === 'UPDATE' && !['FOR', 'NO', 'KEY', 'DO'].includes(up(toks[i - 1])))
      if (upd < 0) return null
      const set = toks.findIndex((t, k) => k > upd && up(t) === 'SET' && t.depth === toks[upd].depth)
      const ft = firstTenantTable(toks.slice(upd))
      if (set < 0 || !ft) return null
      const value = ctx.rng() < 0.25 ? ctx.tenant : otherTenant(ctx)
      return splice(sql, toks[set].end, toks[set].end, ` ${ft.column} = ${q(value)},`)
    },
  },
  {
    name: 'alias-shadow',
    apply(sql, toks, { rng }) {
      // Rename a table alias to the name of another tenant table: FROM tasks t … t.id → FROM tasks users … users.id
      const cands: { alias: string; table: string }[] = []
      toks.forEach((t, i) => {
        if (!['FROM', 'JOIN', 'UPDATE'].includes(up(toks[i - 1])) || t.type !== 'word') return
        if (!TENANT_TABLES.has(`public.${t.text.toLowerCase()}`) || toks[i + 1]?.text === '.') return
        let a = i + 1
        if (up(toks[a]) === 'AS') a++
        const al = toks[a]
        if (
          al &&
          al.type === 'word' &&
          /^[a-z][a-z0-9_]*$/.test(al.text) &&
          !CLAUSE_END.has(up(al)) &&
          !['WHERE', 'SET', 'JOIN', 'LEFT', 'RIGHT', 'FULL', 'INNER', 'CROSS', 'NATURAL', 'ON', 'USING'].includes(up(al))
        )
          cands.push({ alias: al.text, table: t.text.toLowerCase() })
      })
      if (!cands.length) return null
      const c = pick(rng, cands)
      const names = [...TENANT_TABLES.keys()]
        .filter((k) => k.startsWith('public.'))
        .map((k) => k.slice(7))
        .filter((n) => n !== c.table)
      const to = pick(rng, names)
      let out = sql
      for (const t of [...toks].reverse()) if (t.type === 'word' && t.text === c.alias) out = splice(out, t.start, t.end, to)
      return out
    },
  },
  {
    name: 'comment-injection',
    apply(sql, toks, { rng }) {
      // Comments (multibyte, nested, line) between random tokens: splice offsets must survive them.
      if (toks.length < 2) return null
      let out = sql
      const picks = [...new Set(Array.from({ length: 1 + Math.floor(rng() * 3) }, () => 1 + Math.floor(rng() * (toks.length - 1))))].sort((a, b) => b - a)
      for (const i of picks) {
        const c = pick(rng, ['/* ü — 🚀 */', '/* a /* nested */ b */', '-- line ✓\n', '\n\t', '/**/'])
        out = splice(out, toks[i].start, toks[i].start, ` ${c} `)
      }
      return out
    },
  },
  {
    name: 'multibyte-prefix',
    apply(sql, toks, { rng }) {
      // Multibyte text before every splice point: byte offsets ≠ string indices.
      if (up(toks[0]) === 'SELECT' && toks[1] && up(toks[1]) !== 'DISTINCT' && up(toks[1]) !== 'ALL')
        return splice(sql, toks[1].start, toks[1].start, `'${pick(rng, ['é', '—', '🚀🚀', 'ü€ß', '日本語'])}' AS u8_note, `)
      return `/* ${pick(rng, ['é', '—', '🚀🚀', '日本語'])} */ ${sql}`
    },
  },
  {
    name: 'case-and-space',
    apply(sql, toks, { rng }) {
      // Keywords and unquoted names in random case, whitespace as newlines/tabs.
      let out = sql
      for (const t of [...toks].reverse()) {
        if (t.type === 'word' && rng() < 0.5) out = splice(out, t.start, t.end, rng() < 0.5 ? t.text.toUpperCase() : t.text.toLowerCase())
      }
      return out.replace(/ +/g, () => pick(rng, [' ', '  ', '\n', '\t', ' \n  ']))
    },
  },
  {
    name: 'select-star',
    apply(sql, toks) {
      if (up(toks[0]) !== 'SELECT' || toks.some((t) => t.depth === 0 && ['GROUP', 'UNION', 'INTERSECT', 'EXCEPT', 'DISTINCT', 'HAVING'].includes(up(t))))
        return null
      const from = toks.findIndex((t) => t.depth === 0 && up(t) === 'FROM')
      if (from < 2) return null
      return splice(sql, toks[1].start, toks[from - 1].end, '*')
    },
  },
  {
    name: 'requalify-table',
    apply(sql, toks, { rng }) {
      const cands = toks
        .map((t, i) => ({ t, i }))
        .filter(
          ({ t, i }) =>
            ['FROM', 'JOIN', 'UPDATE', 'INTO'].includes(up(toks[i - 1])) &&
            t.type === 'word' &&
            TENANT_TABLES.has(`public.${t.text.toLowerCase()}`) &&
            toks[i + 1]?.text !== '.',
        )
      if (!cands.length) return null
      const { t, i } = pick(rng, cands)
      const name = t.text.toLowerCase()
      const canOnly = ['FROM', 'JOIN', 'UPDATE'].includes(up(toks[i - 1])) && up(toks[i - 2]) !== 'DELETE'
      const forms = [
        `public.${name}`,
        `"public"."${name}"`,
        `"${name}"`,
        `PUBLIC.${name.toUpperCase()}`,
        ...(canOnly ? [`ONLY ${name}`, `ONLY public.${name}`] : []),
      ]
      // public.tasks, "public"."tasks", PUBLIC.TASKS and ONLY tasks all keep the range name tasks, so tasks.id stays valid.
      return splice(sql, t.start, t.end, pick(rng, forms))
    },
  },
]

export function mutate(sql: string, ctx: MutationCtx, count: number): { sql: string; names: string[] } | null {
  let cur = sql
  const names: string[] = []
  for (let k = 0; k < count; k++) {
    const toks = tokenize(cur)
    const order = [...MUTATIONS].sort(() => ctx.rng() - 0.5)
    let done = false
    for (const m of order) {
      const next = m.apply(cur, toks, ctx)
      if (next && next !== cur) {
        cur = next
        names.push(m.name)
        done = true
        break
      }
    }
    if (!done) break
  }
  return names.length ? { sql: cur, names } : null
}
