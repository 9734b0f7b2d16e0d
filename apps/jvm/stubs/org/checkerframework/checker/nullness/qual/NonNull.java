// Compile-only stub of the Checker Framework annotation that LiteRT's Java API puts on
// parameters (Kotlin reads it as "not nullable", as it does with the real LiteRT jar).
// Source: org.checkerframework:checker-qual, org/checkerframework/checker/nullness/qual/NonNull.java.
package org.checkerframework.checker.nullness.qual;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

@Documented
@Retention(RetentionPolicy.RUNTIME)
@Target({ElementType.TYPE_USE, ElementType.TYPE_PARAMETER})
public @interface NonNull {}
