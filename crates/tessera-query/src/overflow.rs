//! Integer `+`, `-` and `*` fail on overflow, as the SQL standard and PostgreSQL have it,
//! instead of wrapping around as Arrow's default kernels do (`9223372036854775807 + 1` is an
//! error, not a negative number).
//!
//! DataFusion has the checked kernels (`BinaryExpr::with_fail_on_overflow`) but no setting that
//! turns them on for SQL. [`CheckedIntegerArithmetic`] is an analyzer rule that runs after type
//! coercion and replaces each integer `+`, `-`, `*` with a call of a function that uses Arrow's
//! checked kernels; output columns keep their names. Constants are folded by calling the same
//! function, so an overflowing constant expression fails too.

use std::sync::Arc;

use arrow::compute::kernels::numeric;
use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
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
    add: Arc<ScalarUDF>,
    subtract: Arc<ScalarUDF>,
    multiply: Arc<ScalarUDF>,
}

impl Default for CheckedIntegerArithmetic {
    fn default() -> Self {
        let udf = |op| Arc::new(ScalarUDF::from(Checked::new(op)));
        Self {
            add: udf(Operator::Plus),
            subtract: udf(Operator::Minus),
            multiply: udf(Operator::Multiply),
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

impl CheckedIntegerArithmetic {
    fn rewrite(&self, expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &expr else {
            return Ok(Transformed::no(expr));
        };
        let udf = match op {
            Operator::Plus => &self.add,
            Operator::Minus => &self.subtract,
            Operator::Multiply => &self.multiply,
            _ => return Ok(Transformed::no(expr)),
        };
        // Type coercion made both sides the same type; only integers are rewritten.
        let integers = matches!(
            (left.get_type(schema), right.get_type(schema)),
            (Ok(l), Ok(r)) if l == r && l.is_integer()
        );
        if !integers {
            return Ok(Transformed::no(expr));
        }
        let Expr::BinaryExpr(BinaryExpr { left, right, .. }) = expr else {
            unreachable!("matched above");
        };
        Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(udf.clone(), vec![*left, *right]),
        )))
    }
}

/// `a + b`, `a - b` or `a * b` of two integers of the same type, failing on overflow.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Checked {
    op: Operator,
    name: String,
    signature: Signature,
}

impl Checked {
    fn new(op: Operator) -> Self {
        let name = match op {
            Operator::Plus => "tessera_checked_add",
            Operator::Minus => "tessera_checked_subtract",
            _ => "tessera_checked_multiply",
        };
        Self {
            op,
            name: name.to_string(),
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args.first().cloned().unwrap_or(DataType::Int64))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [left, right] = args.args.as_slice() else {
            return datafusion::common::exec_err!("{} takes two arguments", self.name);
        };
        match self.op {
            Operator::Plus => apply(left, right, numeric::add),
            Operator::Minus => apply(left, right, numeric::sub),
            _ => apply(left, right, numeric::mul),
        }
    }
}
