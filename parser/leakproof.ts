// "Leakproof-safe" expressions (issue #22): a WHERE / JOIN … ON conjunct built only from what this
// predicate accepts may be evaluated before a row's tenant restriction (PostgreSQL evaluates ANDed
// conditions in the order it likes), because it cannot carry a value out through a side effect or an
// error message. Everything else must be put behind the restriction (`CASE WHEN <restriction> THEN
// (<expr>) END`). Shared by the rewriter (parser/analyze.ts, to decide what to wrap) and the verifier
// (parser/verify.ts, to check it was wrapped): one definition, over libpg-query's JSON parse tree.
//
// Accepted, recursively:
//   - column references (no `*`) for which `columnOk` says yes (the caller decides which refer to
//     plain tables, not to subquery / CTE / function outputs, which may be arbitrary expressions);
//   - constants (A_Const, incl. NULL), parameters ($n), casts of constants and parameters;
//   - AND / OR / NOT;
//   - the comparison operators = <> != < > <= >= (unqualified or OPERATOR(pg_catalog.op)) as
//     binary operators, IN / NOT IN (…) lists, [NOT] BETWEEN [SYMMETRIC], op ANY/ALL (ARRAY[…] |
//     constant | parameter), IS [NOT] DISTINCT FROM;
//   - IS [NOT] NULL, IS [NOT] TRUE/FALSE/UNKNOWN;
//   - row constructors of accepted operands (compared column by column with the same operators);
//   - row-independent values (see rowIndependent): expressions that read no column and call only
//     side-effect-free pg_catalog functions such as current_setting('app.tenant') or now() - interval
//     '1 day'. Evaluated on another tenant's row they see nothing of it, so, like a parameter, they may
//     run first (PostgreSQL's own test, contain_leaked_vars, likewise only objects to non-leakproof
//     functions whose arguments hold columns). Citus refuses non-IMMUTABLE functions inside CASE in an
//     UPDATE / DELETE, so guarding them would make `WHERE tenant_id = current_setting(…)` fail there.
// Anything else (other function calls, sublinks, other operators, LIKE, CASE, casts of columns,
// subscripts, …) is not leakproof-safe.
//
// Pure: no state, no I/O.

type N = any

const COMPARISON = new Set(['=', '<>', '!=', '<', '>', '<=', '>='])

/** The operator of an A_Expr if it is one of the accepted comparison operators, else null. */
function comparisonOp(name: N): string | null {
  const op = catalogName(name)
  return op !== null && COMPARISON.has(op) ? op : null
}

function onlyKey(n: N): string | null {
  if (n === null || typeof n !== 'object' || Array.isArray(n)) return null
  const keys = Object.keys(n)
  return keys.length === 1 ? keys[0] : null
}

/**
 * pg_catalog functions without side effects whose value depends on no row: a call with row-independent
 * arguments may be evaluated per row (it is STABLE) without carrying anything of the row out. Errors
 * they raise (an unknown setting, a bad cast of its text) name only their constant arguments.
 */
const ROW_INDEPENDENT_FUNCTIONS = new Set(['current_setting', 'now', 'statement_timestamp', 'transaction_timestamp', 'current_database', 'current_schema'])

/** + and - between row-independent operands (timestamps and intervals, numbers). */
const ROW_INDEPENDENT_OPERATORS = new Set(['+', '-'])

/** The last part of an operator's or function's name, unqualified or pg_catalog-qualified; else null. */
function catalogName(names: N): string | null {
  if (!Array.isArray(names) || names.length === 0 || names.length > 2) return null
  const parts = names.map((x: N) => x?.String?.sval)
  if (parts.some((p: unknown) => typeof p !== 'string')) return null
  if (parts.length === 2 && parts[0] !== 'pg_catalog') return null
  return parts[parts.length - 1]
}

/**
 * An expression that reads no column: constants, parameters, CURRENT_USER / CURRENT_TIMESTAMP and the
 * like, casts of these, calls of ROW_INDEPENDENT_FUNCTIONS with such arguments (not when `shadowed`
 * names the function: the database has one of that name outside pg_catalog, which PostgreSQL may call
 * instead), and + / - between them.
 */
export function rowIndependent(n: N, shadowed?: ReadonlySet<string>, depth = 0): boolean {
  if (depth > 64) return false
  const k = onlyKey(n)
  if (k === 'A_Const' || k === 'ParamRef' || k === 'SQLValueFunction') return true
  const v = n[k!]
  if (k === 'TypeCast') return rowIndependent(v.arg, shadowed, depth + 1)
  if (k === 'FuncCall') {
    const name = catalogName(v.funcname)
    if (name === null || !ROW_INDEPENDENT_FUNCTIONS.has(name)) return false
    if (v.funcname.length === 1 && shadowed?.has(name)) return false
    if (v.agg_star || v.agg_distinct || v.agg_order || v.agg_filter || v.over || v.func_variadic || v.agg_within_group) return false
    const args: N[] = v.args ?? []
    return args.every((a) => rowIndependent(a, shadowed, depth + 1))
  }
  if (k === 'A_Expr' && v.kind === 'AEXPR_OP' && v.lexpr !== undefined && v.rexpr !== undefined) {
    const op = catalogName(v.name)
    return op !== null && ROW_INDEPENDENT_OPERATORS.has(op) && rowIndependent(v.lexpr, shadowed, depth + 1) && rowIndependent(v.rexpr, shadowed, depth + 1)
  }
  return false
}

/** A constant, a parameter, or a cast (of a cast …) of one. */
export function isConstOrParam(n: N): boolean {
  for (let depth = 0; depth < 64; depth++) {
    const k = onlyKey(n)
    if (k === 'A_Const' || k === 'ParamRef') return true
    if (k !== 'TypeCast') return false
    n = n.TypeCast.arg
  }
  return false
}

/**
 * Is `expr` leakproof-safe (see the header)? `columnOk(ref)` is asked for every column reference
 * (the ColumnRef node's inner object, `{ fields, location }`); by default every column reference
 * without `*` is accepted.
 */
export function isLeakproofSafe(expr: N, columnOk: (ref: N) => boolean = () => true, shadowed?: ReadonlySet<string>): boolean {
  const ok = (n: N, depth: number): boolean => {
    if (depth > 200) return false
    const k = onlyKey(n)
    if (k === null) return false
    const v = n[k]
    switch (k) {
      case 'A_Const':
      case 'ParamRef':
        return true
      case 'TypeCast':
      case 'FuncCall':
      case 'SQLValueFunction':
        return rowIndependent(n, shadowed)
      case 'ColumnRef': {
        const f: N[] = v.fields ?? []
        if (f.length === 0 || !f.every((x) => typeof x?.String?.sval === 'string')) return false
        return columnOk(v)
      }
      case 'BoolExpr': {
        const args: N[] = v.args ?? []
        if (!['AND_EXPR', 'OR_EXPR', 'NOT_EXPR'].includes(v.boolop) || args.length === 0) return false
        return args.every((a) => ok(a, depth + 1))
      }
      case 'RowExpr': {
        // (a, b) = (1, $2), (a, b) IN ((…), (…)): PostgreSQL compares row constructors column by column
        // with the same operators, so a row of safe operands is as safe as its columns
        const args: N[] = v.args ?? []
        return args.length > 0 && args.every((a) => ok(a, depth + 1))
      }
      case 'NullTest':
      case 'BooleanTest':
        return v.arg !== undefined && ok(v.arg, depth + 1)
      case 'A_Expr':
        return aExpr(v, depth)
      default:
        return false
    }
  }
  const list = (n: N, depth: number): boolean => {
    const items: N[] | undefined = n?.List?.items
    return Array.isArray(items) && items.length > 0 && items.every((x) => ok(x, depth + 1))
  }
  const arrayOperand = (n: N, depth: number): boolean => {
    // op ANY/ALL (…): an ARRAY[…] of safe elements, or a constant / parameter (an array literal, $1)
    if (isConstOrParam(n)) return true
    const arr = n?.A_ArrayExpr
    if (arr && onlyKey(n) === 'A_ArrayExpr') {
      const el: N[] = arr.elements ?? []
      return el.every((x) => ok(x, depth + 1))
    }
    return false
  }
  const aExpr = (v: N, depth: number): boolean => {
    if (v.lexpr === undefined || v.rexpr === undefined) return false
    switch (v.kind) {
      case 'AEXPR_OP':
        if (comparisonOp(v.name) === null) return rowIndependent({ A_Expr: v }, shadowed)
        return ok(v.lexpr, depth + 1) && ok(v.rexpr, depth + 1)
      case 'AEXPR_DISTINCT':
      case 'AEXPR_NOT_DISTINCT':
        return comparisonOp(v.name) !== null && ok(v.lexpr, depth + 1) && ok(v.rexpr, depth + 1)
      case 'AEXPR_OP_ANY':
      case 'AEXPR_OP_ALL':
        return comparisonOp(v.name) !== null && ok(v.lexpr, depth + 1) && arrayOperand(v.rexpr, depth + 1)
      case 'AEXPR_IN':
        return comparisonOp(v.name) !== null && ok(v.lexpr, depth + 1) && list(v.rexpr, depth + 1)
      case 'AEXPR_BETWEEN':
      case 'AEXPR_NOT_BETWEEN':
      case 'AEXPR_BETWEEN_SYM':
      case 'AEXPR_NOT_BETWEEN_SYM':
        return ok(v.lexpr, depth + 1) && list(v.rexpr, depth + 1) && v.rexpr.List.items.length === 2
      default:
        return false
    }
  }
  try {
    return ok(expr, 0)
  } catch {
    return false
  }
}
