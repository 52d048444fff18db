//! Integer `+`, `-` and `*` fail on overflow, as the SQL standard and PostgreSQL have it,
//! instead of wrapping around as Arrow's default kernels do (`9223372036854775807 + 1` is an
//! error, not a negative number).
//!
//! DataFusion has the checked kernels (`BinaryExpr::with_fail_on_overflow`) but no setting that
//! turns them on for SQL. [`CheckedIntegerArithmetic`] is an analyzer rule that runs after type
//! coercion and replaces each chain of integer `+` and `-` (or of `*`) with one call of a
//! function that uses Arrow's checked kernels — one call per chain, not per link, so a long
//! `a + b + …` stays a flat expression; output columns keep their names. Constants are folded by calling the same
//! function, so an overflowing constant expression fails too.

use std::sync::Arc;

use arrow::compute::kernels::numeric;
use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr_common::datum::apply;

/// The analyzer rule; see the module documentation.
#[derive(Debug)]
pub(crate) struct CheckedIntegerArithmetic {
    chain: Arc<ScalarUDF>,
}

impl Default for CheckedIntegerArithmetic {
    fn default() -> Self {
        Self {
            chain: Arc::new(ScalarUDF::from(CheckedChain::default())),
        }
    }
}

impl AnalyzerRule for CheckedIntegerArithmetic {
    fn name(&self) -> &str {
        "tessera_checked_integer_arithmetic"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let mut schema = merge_schema(&plan.inputs());
            if let LogicalPlan::TableScan(scan) = &plan {
                schema.merge(&DFSchema::try_from_qualified_schema(
                    scan.table_name.clone(),
                    &scan.source.schema(),
                )?);
            }
            let names = NamePreserver::new(&plan);
            plan.map_expressions(|expr| {
                let name = names.save(&expr);
                let rewritten = expr.transform_up(|e| self.rewrite(e, &schema))?;
                Ok(rewritten.update_data(|e| name.restore(e)))
            })
        })
        .map(|t| t.data)
    }
}

/// The operators of one chain, as the chain function's first argument: `+` and `-` chain
/// together (one precedence), `*` on its own.
fn additive(op: Operator) -> Option<bool> {
    match op {
        Operator::Plus | Operator::Minus => Some(true),
        Operator::Multiply => Some(false),
        _ => None,
    }
}

fn symbol(op: Operator) -> char {
    match op {
        Operator::Plus => '+',
        Operator::Minus => '-',
        _ => '*',
    }
}

impl CheckedIntegerArithmetic {
    /// The operators and operands of `expr` when it is a call of the chain function.
    fn chain_of<'a>(&self, expr: &'a Expr) -> Option<(&'a str, &'a [Expr])> {
        let Expr::ScalarFunction(call) = expr else {
            return None;
        };
        if call.func.name() != self.chain.name() {
            return None;
        }
        match call.args.split_first() {
            Some((Expr::Literal(ScalarValue::Utf8(Some(ops)), _), operands)) => {
                Some((ops.as_str(), operands))
            }
            _ => None,
        }
    }

    fn rewrite(&self, expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &expr else {
            return Ok(Transformed::no(expr));
        };
        let Some(is_additive) = additive(*op) else {
            return Ok(Transformed::no(expr));
        };
        // Type coercion made both sides the same type; only integers are rewritten.
        let integers = matches!(
            (left.get_type(schema), right.get_type(schema)),
            (Ok(l), Ok(r)) if l == r && l.is_integer()
        );
        if !integers {
            return Ok(Transformed::no(expr));
        }
        // A left-deep chain (`a + b - c + …`, parsed as `((a + b) - c) + …`) becomes one call
        // with all its operands, not a call nested once per link: walks over it then stay
        // linear in its length.
        let (mut ops, mut operands) = match self.chain_of(left) {
            Some((ops, operands)) if ops.chars().all(|c| (c == '*') != is_additive) => {
                (ops.to_string(), operands.to_vec())
            }
            _ => (String::new(), vec![left.as_ref().clone()]),
        };
        ops.push(symbol(*op));
        operands.push(right.as_ref().clone());
        let mut args = Vec::with_capacity(operands.len() + 1);
        args.push(Expr::Literal(ScalarValue::Utf8(Some(ops)), None));
        args.extend(operands);
        Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(self.chain.clone(), args),
        )))
    }
}

/// `tessera_checked_arithmetic(ops, a, b, c, …)`: `a`, `b`, `c`… (integers of one type)
/// combined left to right by the operators in `ops` (`+`, `-`, `*`), failing on overflow.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedChain {
    signature: Signature,
}

impl Default for CheckedChain {
    fn default() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for CheckedChain {
    fn name(&self) -> &str {
        "tessera_checked_arithmetic"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args.get(1).cloned().unwrap_or(DataType::Int64))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some((ColumnarValue::Scalar(ScalarValue::Utf8(Some(ops))), operands)) =
            args.args.split_first()
        else {
            return datafusion::common::exec_err!("{} needs its operators first", self.name());
        };
        let Some((first, rest)) = operands.split_first() else {
            return datafusion::common::exec_err!("{} needs operands", self.name());
        };
        if rest.len() != ops.chars().count() {
            return datafusion::common::exec_err!("{}: operators and operands differ", self.name());
        }
        let mut value = first.clone();
        for (op, operand) in ops.chars().zip(rest) {
            value = match op {
                '+' => apply(&value, operand, numeric::add)?,
                '-' => apply(&value, operand, numeric::sub)?,
                _ => apply(&value, operand, numeric::mul)?,
            };
        }
        Ok(value)
    }
}
